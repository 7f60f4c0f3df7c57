"""Batch throughput, resume overhead and worker memory: `veil redact` as a user runs it.

    python benchmarks/bench_batch.py [--photos 200] [--clips 6] [--seconds 3] [--no-ray] [--ray-rounds 3]

Every figure is one real `python -m veil redact` process, timed from start to exit, on the same
inputs in the same temporary folder (WIDER derivatives: never kept):

- photos: `--photos` dev photos (the 183 cycled, each copy a distinct path), --jobs 1 against
  --jobs 2 (aim: >= 1.7x), and the CPUs --jobs 1 keeps busy (CPU seconds over wall seconds), which
  bounds what --jobs 2 can reach on this machine (CPUs / CPUs busy);
- clips: `--clips` rendered clips (make_clips.py, 480x270, 15 fps), --jobs 1 against --jobs 2;
- Ray: the photos again through `--ray` on a local 2-CPU cluster (`ray start --head --block`,
  started and stopped here; its start-up is not timed: the run waits until the machine is idle
  again, as an existing cluster would be) against the local pool, the two taking turns
  `--ray-rounds` times, the first pool run being the --jobs 2 run above (aim: <= 15 % overhead,
  the median of the turns);
- resume: the photo batch re-run over its finished output folder (aim: <= 2 s: hashes, no model);
- memory: the peak RSS (VmHWM) of the driver and of each worker process, sampled from /proc.

The machine's cores may be shared with other work while this runs; the report says how many
CPUs this process may use, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WIDER = DATA / "wider_dev"


def _photos(folder: Path, count: int) -> None:
    sources = sorted((WIDER / "images").rglob("*.jpg"))
    folder.mkdir(parents=True)
    for i in range(count):
        source = sources[i % len(sources)]
        shutil.copyfile(source, folder / f"{i:04d}_{source.name}")


def _clips(folder: Path, count: int, seconds: float) -> None:
    from bench_video import load_make_clips

    render = folder.parent / "render"
    entries = load_make_clips().make_clips(str(render), count=count, seconds=seconds, fps=Fraction(15),
                                size=(480, 270))
    folder.mkdir(parents=True)
    for entry in entries:
        name = Path(entry["video"]).name
        shutil.move(str(render / name), folder / name)


class RssSampler:
    """Peak RSS per process: the driver and its descendants, or (Ray) the processes titled ray::."""

    def __init__(self, root: int | None, ray_titles: bool = False) -> None:
        self.root, self.ray_titles = root, ray_titles
        self.peak_kb: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, name in self._processes():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                hwm = next((int(line.split()[1]) for line in status.splitlines()
                            if line.startswith("VmHWM:")), 0)
                self.peak_kb[pid] = (name, max(hwm, self.peak_kb.get(pid, ("", 0))[1]))
            time.sleep(0.1)

    def _processes(self) -> list[tuple[int, str]]:
        parents: dict[int, int] = {}
        titles: dict[int, str] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                titles[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().split(b"\0")[0].decode(
                    errors="replace")
            except (OSError, IndexError, ValueError):
                continue
        if self.ray_titles:
            return [(pid, title) for pid, title in titles.items() if title.startswith("ray::")]
        found, frontier = [], [self.root]
        while frontier:
            pid = frontier.pop()
            found.append((pid, "driver" if pid == self.root else "worker"))
            frontier += [child for child, parent in parents.items() if parent == pid]
        return [(pid, name) for pid, name in found if pid is not None]

    def stop(self) -> dict[str, list[float]]:
        self._stop.set()
        self._thread.join()
        by_kind: dict[str, list[float]] = {}
        for name, kb in self.peak_kb.values():
            kind = "driver" if name == "driver" else ("ray worker" if name.startswith("ray::") else "worker")
            by_kind.setdefault(kind, []).append(round(kb / 1024, 1))
        return {kind: sorted(values) for kind, values in by_kind.items()}


def run_veil(args: list[str], env: dict[str, str], ray_titles: bool = False) -> tuple[float, dict, float]:
    """One `veil redact` run: its seconds, peak RSS, and the CPU seconds of the process and the
    workers it waited for (not Ray's, which the cluster runs)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "veil", "redact", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(None if ray_titles else process.pid, ray_titles)
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    rss = sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if process.returncode != 0:
        raise SystemExit(f"veil redact {' '.join(args)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return seconds, rss, cpu


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_ray(env: dict[str, str], temp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--num-cpus", "2",
                             "--include-dashboard", "false", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--temp-dir", str(temp), "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        if head.poll() is not None:
            raise SystemExit("the Ray head did not start")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return head, f"127.0.0.1:{port}"
        time.sleep(0.2)


def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(limit_s: float = 60.0, busy_below: float = 0.1) -> float:
    """Wait until the machine is idle (under `busy_below` of its CPUs busy for two seconds running,
    at most `limit_s`); return the seconds waited. A Ray head keeps starting its agents and
    prestarted workers for a while after its port opens: timing a batch then charges that boot to
    the batch, which an existing cluster does not pay."""
    started = time.perf_counter()
    quiet = 0
    last = _cpu_busy()
    while time.perf_counter() - started < limit_s and quiet < 2:
        time.sleep(1.0)
        now = _cpu_busy()
        share = (now[0] - last[0]) / max(now[1] - last[1], 1)
        quiet = quiet + 1 if share < busy_below else 0
        last = now
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--ray-rounds", type=int, default=3,
                        help="pool and Ray runs taking turns; the median overhead is reported")
    options = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               NO_COLOR="1", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    results: dict[str, object] = {"cpus": len(os.sched_getaffinity(0)), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="veil-bench-batch-") as tmp:
        work = Path(tmp)
        env.setdefault("VEIL_CACHE_DIR", str(work / "cache"))
        photos, clips = work / "photos", work / "clips"
        _photos(photos, options.photos)
        if options.clips:
            _clips(clips, options.clips, options.seconds)
        # Warm the INT8 video detector's cache and the page cache before any timed run.
        run_veil([str(next(photos.iterdir())), "-o", str(work / "warm.jpg")], env)

        def timed(name: str, args: list[str], **kw: object) -> float:
            seconds, rss, cpu = run_veil(args, env, **kw)  # type: ignore[arg-type]
            results[name] = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": rss}
            print(f"{name:<22} {seconds:8.2f} s   {cpu / seconds:4.2f} CPUs busy   peak RSS MB {rss}", flush=True)
            return seconds

        p1 = timed("photos --jobs 1", [str(photos), "-o", str(work / "p1"), "--jobs", "1"])
        p2 = timed("photos --jobs 2", [str(photos), "-o", str(work / "p2"), "--jobs", "2"])
        resume = timed("resume (all done)", [str(photos), "-o", str(work / "p2"), "--jobs", "2"])
        results["photos speed-up"] = round(p1 / p2, 2)
        # --jobs 1 already keeps more than one core busy (onnxruntime's threads): with every CPU
        # busy, --jobs 2 could at best be (CPUs / CPUs busy under --jobs 1) times faster.
        busy = results["photos --jobs 1"]["cpu_seconds"] / p1  # type: ignore[index]
        results["photos --jobs 1: CPUs busy"] = round(busy, 2)
        results["photos speed-up bound (CPUs / CPUs busy)"] = round(results["cpus"] / busy, 2)  # type: ignore[operator]
        if options.clips:
            c1 = timed("clips --jobs 1", [str(clips), "-o", str(work / "c1"), "--jobs", "1"])
            c2 = timed("clips --jobs 2", [str(clips), "-o", str(work / "c2"), "--jobs", "2"])
            results["clips speed-up"] = round(c1 / c2, 2)
        if not options.no_ray:
            ray_temp = Path(tempfile.mkdtemp(prefix="veil-ray-"))
            head, address = start_ray(env, ray_temp)
            results["ray settle seconds"] = settle()
            try:
                # Pool and Ray take turns: one pair of runs moves by 10-20 % on this machine.
                overheads = []
                for turn in range(1, options.ray_rounds + 1):
                    pool = p2 if turn == 1 else timed(
                        f"photos --jobs 2 #{turn}", [str(photos), "-o", str(work / f"p2-{turn}"), "--jobs", "2"])
                    r = timed(f"photos --ray #{turn}", [str(photos), "-o", str(work / f"pr-{turn}"),
                                                        "--ray", address], ray_titles=True)
                    overheads.append(round(r / pool - 1, 3))
                results["ray overhead vs --jobs 2, per turn"] = overheads
                results["ray overhead vs --jobs 2"] = statistics.median(overheads)
            finally:
                head.send_signal(signal.SIGTERM)
                head.wait(60)
                shutil.rmtree(ray_temp, ignore_errors=True)
        results["resume seconds"] = round(resume, 2)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
