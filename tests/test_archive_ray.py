"""`veil redact --ray` on a real local Ray cluster: photos and clips as Ray tasks, a worker
SIGKILLed mid-task, the file retried, the batch completed, the cluster stopped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from helpers import keyframed_clip
from veil.archive import LEDGER_NAME, Ledger, State

pytestmark = pytest.mark.slow  # starting a Ray cluster alone takes ~10 s

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'veil[ray]')")

TEMP_MARK = ".veil-partial-"

def _ray_env() -> dict[str, str]:
    """A throwaway cluster on 127.0.0.1: no token (Ray 2.5x enables token auth whenever a token
    file exists in ~/.ray, which would make the test depend on the machine), no usage reports."""
    return dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture()
def cluster() -> Iterator[str]:
    """`ray start --head --block` on 127.0.0.1 with 2 CPUs. Blocking, the command owns the cluster:
    SIGTERM to it stops exactly this cluster (`ray stop` would stop every Ray on the machine)."""
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not installed")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="veil-ray-")  # short: Ray's socket paths must fit 107 bytes
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--num-cpus", "2",
                             "--include-dashboard", "false", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--temp-dir", temp, "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_ray_env())
    try:
        deadline = time.monotonic() + 90
        while True:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _ray_task_pids(name: str) -> list[int]:
    """Ray worker processes now running the task for `name` (Ray titles them ray::<task name>)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith(f"ray::veil:{name}"):
            pids.append(int(cmdline.parent.name))
    return pids


def test_ray_batch_survives_a_killed_worker(tmp_path: Path, cluster: str, wider_dir: Path,
                                            wider_gt, make_clips_module) -> None:  # type: ignore[no-untyped-def]
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for truth in wider_gt[:4]:
        shutil.copyfile(wider_dir / truth.image, src / Path(truth.image).name)
    clips = make_clips_module.make_clips(str(tmp_path / "render"), count=2, seconds=3.0,
                                         fps=Fraction(10), size=(320, 240))
    names = [Path(entry["video"]).name for entry in clips]
    for name in names:
        shutil.copyfile(tmp_path / "render" / name, src / name)
    victim = names[0]
    # A "long" video: 6 s, cut by --segment-minutes 0.025 (1.5 s) into 4 segments, one task each.
    keyframed_clip(src / "long.mp4", 6.0)

    killed: list[int] = []

    def kill_the_first_worker_on_the_victim() -> None:
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline:
            for pid in _ray_task_pids(victim):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    ray_names: set[str] = set()  # the long video's tasks seen running
    finished = threading.Event()

    def watch_the_segments() -> None:
        while not finished.wait(0.05):
            ray_names.update(f"long.mp4#{n}" for n in range(1, 5) if _ray_task_pids(f"long.mp4#{n}"))

    killer = threading.Thread(target=kill_the_first_worker_on_the_victim, daemon=True)
    killer.start()
    watcher = threading.Thread(target=watch_the_segments, daemon=True)
    watcher.start()
    result = subprocess.run([sys.executable, "-m", "veil", "redact", str(src), "-o", str(out),
                             "--ray", cluster, "--segment-minutes", "0.025"],
                            capture_output=True, text=True, timeout=400,
                            env=dict(_ray_env(), NO_COLOR="1"))
    killer.join(1)
    finished.set()
    watcher.join(5)
    assert killed, f"no Ray worker was seen running {victim}:\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    with Ledger.open(out / LEDGER_NAME) as ledger:
        rows = {Path(k).name: row for k, row in ledger.rows().items()}
    assert set(rows) == {p.name for p in src.iterdir()}
    assert all(row.state is State.DONE for row in rows.values())
    assert rows[victim].attempts == 2, "the killed worker's file was not retried exactly once"
    assert all(row.attempts == 1 for name, row in rows.items() if name != victim)
    for name in rows:
        assert (out / name).stat().st_size > 0
    assert (rows[names[1]].report or {}).get("frames") == 30
    # The long video's segments ran as Ray tasks, were joined, and their rows are gone.
    assert (rows["long.mp4"].report or {}).get("frames") == 180
    with av.open(str(out / "long.mp4")) as joined, av.open(str(src / "long.mp4")) as source:
        assert [f.pts for f in joined.decode(video=0)] == [f.pts for f in source.decode(video=0)]
    assert not [p for p in out.iterdir() if ".veil-segment-" in p.name]
    assert len(ray_names) >= 2, f"the long video's segments were not seen as Ray tasks: {ray_names}"
    assert not [p for p in out.rglob("*") if TEMP_MARK in p.name]
