"""`veil live` on the other network inputs and outputs, each against a real server or socket.

- RTSP, as an IP camera or a body-worn camera dock serves it: GStreamer's RTSP server
  (tests/rtsp_server.py, Debian's gir1.2-gst-rtsp-server-1.0) plays a stamped clip in real time.
- An HLS playlist over HTTP: Debian's nginx serves the playlist and its segments from a folder.
- MPEG-TS over UDP, in and out: a PyAV publisher sends to veil's socket in real time; veil sends
  its masked stream to a PyAV viewer's socket.

Every output frame is judged against the ground truth of the input frame it shows (the stamp,
live_support). The detector is the truth detector, so a bare face means a frame nobody checked.
All on 127.0.0.1, every wait bounded.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from veil.live import LiveOptions, LiveReport, run_live

from live_support import NGINX, Clip, Nginx, Publisher, RtspServer, Viewer, free_port, judge_file, \
    remux, rtsp_server_missing, stamped_clip, udp_bound, wait_until
from test_live import TruthDetector

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]  # real-time streams, 3-10 s each


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def clip(make_clips_module, tmp_path_factory: pytest.TempPathFactory) -> Clip:  # type: ignore[no-untyped-def]
    return stamped_clip(make_clips_module, tmp_path_factory.mktemp("inputs-clip"), seconds=3.0)


def _judged(path: Path, clip: Clip, report: LiveReport, least: int) -> None:
    verdict = judge_file(path, clip)
    assert report.unchecked_frames == 0
    assert verdict.bare == [], verdict.bare
    assert verdict.checked >= least, (verdict.checked, report)
    assert verdict.numbers == sorted(verdict.numbers)
    assert verdict.face_frames > 0


def test_rtsp_camera(clip: Clip, tmp_path: Path) -> None:
    why = rtsp_server_missing()
    if why is not None:
        _missing(f"GStreamer's RTSP server is not installed (make system-deps): {why}")
    server = RtspServer(clip.path, tmp_path / "rtsp")
    try:
        out = tmp_path / "out.ts"
        report = run_live(LiveOptions(server.url, str(out), timeout_s=2.0,
                                      detector=TruthDetector(clip), budget_s=0.3))
    finally:
        server.stop()
    assert report.input_fps > 25, report
    # The server plays the file once; veil's reconnects then find nothing until --timeout.
    assert report.stopped_by == "timeout", report
    _judged(out, clip, report, least=60)


def test_hls_playlist_over_http(clip: Clip, tmp_path: Path) -> None:
    if not NGINX.exists():
        _missing("nginx is not installed (make system-deps)")
    site = tmp_path / "site"
    (site / "cam").mkdir(parents=True)
    remux(clip.path, site / "cam" / "index.m3u8", "hls", hls_time="1", hls_list_size="0",
          hls_playlist_type="vod")
    assert len(list((site / "cam").glob("*.ts"))) >= 2
    server = Nginx(tmp_path / "nginx", http_root=site)
    try:
        out = tmp_path / "out.ts"
        report = run_live(LiveOptions(f"http://127.0.0.1:{server.http_port}/cam/index.m3u8",
                                      str(out), realtime=True, timeout_s=1.5,
                                      detector=TruthDetector(clip), budget_s=0.3))
    finally:
        server.stop()
    # Played at its own rate (--realtime), once: the playlist's end is the end of the input.
    assert report.input_fps > 25, report
    assert report.stopped_by == "end of input" and report.reconnects == 0, report
    _judged(out, clip, report, least=int(0.8 * len(clip.truth)))


def test_mpegts_over_udp_in_and_out(clip: Clip, tmp_path: Path) -> None:
    port_in, port_out = free_port(), free_port()
    viewer = Viewer(f"udp://127.0.0.1:{port_out}?timeout=4000000", clip, wait_s=20)
    viewer.start()
    assert wait_until(lambda: udp_bound(port_out), 10), "the viewer never listened"
    result: dict[str, LiveReport] = {}

    def run() -> None:
        result["report"] = run_live(LiveOptions(f"udp://127.0.0.1:{port_in}",
                                                f"udp://127.0.0.1:{port_out}", timeout_s=2.0,
                                                detector=TruthDetector(clip), budget_s=0.3))

    veil = threading.Thread(target=run, daemon=True)
    veil.start()
    assert wait_until(lambda: udp_bound(port_in), 15), "veil never listened"
    publisher = Publisher([clip.path], f"udp://127.0.0.1:{port_in}?pkt_size=1316", fmt="mpegts")
    publisher.start()
    publisher.join(20)
    veil.join(30)
    viewer.join(20)
    assert publisher.error is None, publisher.error
    report = result["report"]
    assert report.unchecked_frames == 0 and report.stopped_by == "timeout"
    verdict = viewer.verdict
    assert verdict.bare == [], verdict.bare
    assert verdict.checked >= 60, (verdict, report)
    assert verdict.numbers == sorted(verdict.numbers)
