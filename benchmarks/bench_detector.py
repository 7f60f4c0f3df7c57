"""The face detector alone: fp32 against INT8 CenterFace, per call, timed in the same run.

    python benchmarks/bench_detector.py [--sizes 640x384,384x224,960x544] [--calls 30]

Times onnxruntime's run on a random image of each network input size (the 720p and 1080p main
passes and balanced's large-face pass), alternating fp32 and INT8 calls so that both see the
same load, and prints wall and CPU milliseconds a call and the INT8/fp32 ratio. INT8 gains most
on CPUs with 8-bit dot-product instructions (AVX512-VNNI, AVX-VNNI).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from veil.detect.faces import _session, int8_available  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _time(session, blob: np.ndarray) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    cpu, wall = _cpu(), time.perf_counter()
    session.run(None, {"input.1": blob})
    return (time.perf_counter() - wall) * 1000, (_cpu() - cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x384,384x224,960x544")
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    if not int8_available():
        sys.exit("the INT8 graph could not be built as pinned (see the warning above)")
    sessions = {"fp32": _session(0, False), "int8": _session(0, True)}
    rng = np.random.default_rng(0)
    print(f"{'input':>9} {'fp32 wall':>10} {'cpu':>6} {'int8 wall':>10} {'cpu':>6} {'int8/fp32 wall':>15}")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        blob = (rng.random((1, 3, height, width), dtype=np.float32) * 255).astype(np.float32)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in sessions}
        for name, session in sessions.items():  # warm up
            session.run(None, {"input.1": blob})
        for _ in range(args.calls):
            for name, session in sessions.items():
                times[name].append(_time(session, blob))
        wall = {n: statistics.median(t[0] for t in v) for n, v in times.items()}
        cpu = {n: statistics.median(t[1] for t in v) for n, v in times.items()}
        print(f"{size:>9} {wall['fp32']:8.1f}ms {cpu['fp32']:4.1f}ms {wall['int8']:8.1f}ms "
              f"{cpu['int8']:4.1f}ms {wall['int8'] / wall['fp32']:15.2f}")


if __name__ == "__main__":
    main()
