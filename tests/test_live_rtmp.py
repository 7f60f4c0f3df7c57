"""`veil live` against a real RTMP server: Debian's nginx with libnginx-mod-rtmp.

A PyAV publisher streams a stamped clip in real time to nginx, veil pulls it and pushes the masked
stream back under another key, and a PyAV viewer pulls that and judges every frame against the
ground truth (live_support). Everything runs on 127.0.0.1 with bounded waits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from veil import Config
from veil.live import LiveOptions, LiveReport, run_live

from live_support import NGINX, RTMP_MODULE, Clip, Nginx, Publisher, Viewer, \
    free_port, judge_file, stamped_clip, veil_env
from test_live import TruthDetector

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]  # real-time streams, 4-27 s each


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Nginx:  # type: ignore[misc]
    if not (NGINX.exists() and RTMP_MODULE.exists()):
        message = "nginx with the RTMP module is not installed (make system-deps)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = Nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clip(make_clips_module, tmp_path_factory: pytest.TempPathFactory) -> Clip:  # type: ignore[no-untyped-def]
    return stamped_clip(make_clips_module, tmp_path_factory.mktemp("rtmp-clip"), seconds=3.0,
                        second_size=(480, 270))


def _keys(name: str) -> tuple[str, str]:
    stamp = f"{name}{time.monotonic_ns()}"
    return f"in{stamp}", f"out{stamp}"


def test_pull_mask_push_view_with_veils_detector(nginx: Nginx, clip: Clip) -> None:
    key_in, key_out = _keys("path")
    publisher = Publisher([clip.path, clip.path], nginx.url(key_in))
    viewer = Viewer(nginx.url(key_out), clip, wait_s=30)
    viewer.start()
    publisher.start()
    report = run_live(LiveOptions(nginx.url(key_in), nginx.url(key_out), timeout_s=2.0))
    publisher.join(10)
    viewer.join(15)
    assert publisher.error is None, publisher.error
    verdict = viewer.verdict
    assert report.unchecked_frames == 0
    assert verdict.frames >= 0.8 * report.frames_out
    assert verdict.checked >= 60, verdict
    # veil's own detector: the files' bar, >= 0.95 of faces >= 32 px covered in checked frames.
    assert verdict.covered_fraction >= 0.95, (verdict.covered, verdict.face_frames)
    assert verdict.curtains + verdict.checked + verdict.unreadable == verdict.frames
    # Masks (false ones on the stamp strip included) may cover all copies of the frame number.
    assert verdict.unreadable <= 0.3 * verdict.frames
    assert report.stopped_by == "timeout"


def test_listen_for_a_publisher(nginx: Nginx, clip: Clip, tmp_path: Path) -> None:
    url = f"rtmp://127.0.0.1:{free_port()}/app/key"
    out, report = tmp_path / "out.ts", tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "-m", "veil", "live", "--listen", url, str(out),
                                "--timeout", "15", "--report", str(report)],
                               stderr=subprocess.PIPE, text=True, env=veil_env())
    publisher = Publisher([clip.path], url)
    publisher.start()
    publisher.join(40)
    _, stderr = process.communicate(timeout=40)
    assert publisher.error is None, publisher.error
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    verdict = judge_file(out, clip)
    assert verdict.checked >= 30 and verdict.covered_fraction >= 0.95
    assert json.loads(report.read_text())["unchecked_frames"] == 0


def test_a_dropped_publisher_gets_curtains_until_the_next_publish(nginx: Nginx, clip: Clip) -> None:
    # nginx keeps veil's play session open while no one publishes, and resumes it on a new
    # publish: veil sees a gap in the same connection.
    key_in, key_out = _keys("drop")
    # One pass of the clip (a loop would add a scene cut: see the report on tracking across cuts).
    first = Publisher([clip.path], nginx.url(key_in), cut_after=2.5)
    second = Publisher([clip.path], nginx.url(key_in))
    viewer = Viewer(nginx.url(key_out), clip, wait_s=30)
    viewer.start()
    first.start()

    def republish() -> None:
        first.done.wait(20)
        time.sleep(1.0)
        second.start()

    threading.Thread(target=republish, daemon=True).start()
    report = run_live(LiveOptions(nginx.url(key_in), nginx.url(key_out), timeout_s=4.0,
                                  detector=TruthDetector(clip), config=Config(drop_audio=True)))
    viewer.join(15)
    assert report.curtain_frames + report.repeated_frames >= 30  # the gap was filled, not skipped
    verdict = viewer.verdict
    assert verdict.bare == [] and verdict.curtains >= 15
    numbers = verdict.numbers
    assert any(b < a for a, b in zip(numbers, numbers[1:])), "the second publish never showed"
    assert report.unchecked_frames == 0


def test_veil_reconnects_when_the_server_goes_away(clip: Clip, tmp_path: Path) -> None:
    server = Nginx(tmp_path / "nginx")
    port = server.port
    publisher = Publisher([clip.path], server.url("in"))
    publisher.start()
    out = tmp_path / "out.ts"
    result: dict[str, object] = {}

    def run() -> None:
        result["report"] = run_live(LiveOptions(server.url("in"), str(out), timeout_s=8.0,
                                                detector=TruthDetector(clip),
                                                config=Config(drop_audio=True)))

    veil = threading.Thread(target=run, daemon=True)
    veil.start()
    try:
        time.sleep(3.0)
        server.stop()  # veil's connection is cut
        time.sleep(1.0)
        server = Nginx(tmp_path / "nginx2", port=port)
        again = Publisher([clip.path], server.url("in"))
        again.start()
        veil.join(40)
    finally:
        server.stop()
    report = result["report"]
    assert isinstance(report, LiveReport)
    assert report.reconnects >= 1, report
    assert report.unchecked_frames == 0
    verdict = judge_file(out, clip)
    assert verdict.bare == [] and verdict.curtains >= 15
    numbers = verdict.numbers
    assert any(b < a for a, b in zip(numbers, numbers[1:])), "nothing came after the reconnect"


def test_a_stalled_input_keeps_the_output_alive_and_stops_after_the_timeout(
        nginx: Nginx, clip: Clip) -> None:
    key_in, key_out = _keys("stall")
    publisher = Publisher([clip.path], nginx.url(key_in), stall_after=2.0, stall_for=20)
    viewer = Viewer(nginx.url(key_out), clip, wait_s=30)
    viewer.start()
    publisher.start()
    time.sleep(0.5)  # the stream is live before veil pulls it
    started = time.monotonic()
    report = run_live(LiveOptions(nginx.url(key_in), nginx.url(key_out), timeout_s=3.0,
                                  detector=TruthDetector(clip), config=Config(drop_audio=True)))
    took = time.monotonic() - started
    publisher.stop_event.set()
    viewer.join(15)
    assert report.stopped_by == "timeout"
    assert took < 15
    assert report.curtain_frames >= 30  # ~3 s of stall, filled at 30 fps
    assert viewer.verdict.bare == [] and viewer.verdict.curtains >= 30


def test_a_resolution_change_mid_stream_is_never_shown_unmasked(nginx: Nginx, clip: Clip) -> None:
    key_in, key_out = _keys("size")
    publisher = Publisher([clip.path, clip.path.parent / "stamped_small.ts"], nginx.url(key_in))
    viewer = Viewer(nginx.url(key_out), clip, wait_s=30)
    viewer.start()
    publisher.start()
    report = run_live(LiveOptions(nginx.url(key_in), nginx.url(key_out), timeout_s=2.0,
                                  detector=TruthDetector(clip), config=Config(drop_audio=True)))
    viewer.join(15)
    assert report.segments >= 2, report
    assert viewer.sizes == {clip.size}
    verdict = viewer.verdict
    assert verdict.bare == []
    assert verdict.checked >= 30


def test_a_refused_publish_is_one_line_and_exit_1(nginx: Nginx, clip: Clip) -> None:
    result = subprocess.run([sys.executable, "-m", "veil", "live", str(clip.path),
                             nginx.url("x", app="closed"), "--timeout", "3"],
                            capture_output=True, text=True, timeout=60, env=veil_env())
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
