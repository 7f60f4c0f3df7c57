"""`veil live`: mask every face in a live stream before any frame of it leaves the machine.

The stream runs through the same stages as a file (`pipeline.planned_frames`), in threads:

- `source.py` reads the input (a URL, a listening RTMP socket, stdin, a file played in real
  time), decodes it, and reconnects with backoff;
- `delay.py` is the delay line: the tracker's look-ahead, bounded by `--delay`, which masks a
  face on the frames before its first detection that are still held (backward fill);
- `pacer.py` is the output clock: each output slot gets its checked frame, or, when veil is
  behind or the input stalls, a repeat of the last checked frame or a fully masked curtain;
- `sink.py` encodes (x264 zerolatency, AAC) and muxes to the output and the recording;
- `stats.py` counts what happened for the progress line and the JSON report;
- `session.py` joins them and finalises everything however the run ends.
"""

from __future__ import annotations

from .session import LiveOptions, run_live
from .stats import LiveReport

__all__ = ["LiveOptions", "LiveReport", "run_live"]
