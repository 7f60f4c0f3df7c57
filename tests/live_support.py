"""Test support for `veil live`: stamped clips, an RTMP server, a publisher and a viewer.

The oracle is independent of veil: every picture of a test clip carries its own frame number as a
strip of black and white blocks along its bottom edge (`stamp`/`read_stamp`), so a viewer knows
which input frame each output frame shows, however the stream was delayed, repeated or re-timed,
and checks it against that frame's ground truth. A frame that is black all over is a curtain.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from veil.evaluate import COVERED_FRACTION, FrameTruth, covered_fractions, read_clip_truth

MIN_FACE = 32
BITS = 11
SECOND = 1000  # numbers of the second-size copy start here (see `stamped_clip`)
NGINX = Path("/usr/sbin/nginx")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


COPIES = 4  # the number is written this many times across the band; masks may cover some


def _blocks(luma: np.ndarray) -> tuple[int, int]:
    """Block size relative to the picture, so a stamp survives scaling to another size."""
    return luma.shape[1] // 96, luma.shape[0] // 45


def _copy_x(luma: np.ndarray, copy: int) -> int:
    return copy * (luma.shape[1] // COPIES) + luma.shape[1] // 160


def band(height: int) -> int:
    """Rows at the bottom of each test picture blanked to grey for the stamp: no face there for
    a mask to reach over the stamp (ground-truth boxes are cut at the band)."""
    return height // 11


def above_band(boxes_xyxy: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth boxes cut at the stamp band, and which of them the picture still shows:
    a face with less than half of its box above the band is hidden by the test's own grey band
    (no detector can see it), so it is not judged, as WIDER's half-outside faces are not."""
    boxes = np.asarray(boxes_xyxy, np.float32).copy()
    full = boxes[:, 3] - boxes[:, 1]
    boxes[:, 3] = np.minimum(boxes[:, 3], height - band(height))
    shown = (boxes[:, 3] - boxes[:, 1]) >= 0.5 * full
    return boxes, shown


def stamp(luma: np.ndarray, number: int) -> None:
    """Write `number` COPIES times along the bottom, in place: each bit followed by its
    complement, so a mask over any part of a copy leaves a pair alike and the copy unreadable."""
    bits = [b for i in range(BITS) for b in ((number >> i) & 1, 1 - ((number >> i) & 1))]
    h = luma.shape[0]
    bw, bh = _blocks(luma)
    for copy in range(COPIES):
        x = _copy_x(luma, copy)
        for i, bit in enumerate(bits):
            luma[h - 2 * bh:h - bh, x + i * bw:x + (i + 1) * bw] = 235 if bit else 16


def read_stamp(luma: np.ndarray) -> int | None:
    """The frame number stamped in a Y plane, from the first copy no mask touches; else None.

    A masked block reads black for a bit and its complement alike, so a copy a mask reached
    fails the check instead of reading as another number.
    """
    h = luma.shape[0]
    bw, bh = _blocks(luma)
    rows = luma[h - 2 * bh + bh // 4:h - bh - bh // 4]
    for copy in range(COPIES):
        x = _copy_x(luma, copy)
        values = [float(rows[:, x + i * bw + bw // 3:x + (i + 1) * bw - bw // 3].mean())
                  for i in range(2 * BITS)]
        if any(40 < v < 200 for v in values):
            continue
        bits = [int(v >= 128) for v in values]
        if any(a == b for a, b in zip(bits[0::2], bits[1::2])):
            continue
        return sum(bit << i for i, bit in enumerate(bits[0::2]))
    return None


def is_curtain(luma: np.ndarray) -> bool:
    return float(np.percentile(luma, 99.5)) <= 40


@dataclass
class Clip:
    path: Path  # the stamped clip (H.264 + AAC, MP4)
    truth: list[FrameTruth]
    originals: list[np.ndarray]  # each input frame's Y plane, as stamped
    size: tuple[int, int]
    fps: int


def stamped_clip(make_clips_module: Any, out: Path, seconds: float = 3.0,
                 size: tuple[int, int] = (640, 360), fps: int = 30,
                 second_size: tuple[int, int] | None = None) -> Clip:
    """Render one crowd clip with make_clips.py and re-encode it as MPEG-TS (headers in band, so
    clips can follow each other in one stream) with frame numbers stamped in. With
    `second_size`, also `stamped_small.ts`: the same frames at that size, numbered from SECOND."""
    [entry] = make_clips_module.make_clips(str(out), count=1, seconds=seconds, size=size,
                                           fps=Fraction(fps))
    return stamp_clip(out / entry["video"], out / entry["gt"], out, size, fps, second_size)


def stamp_clip(source: Path, gt: Path, out: Path, size: tuple[int, int], fps: int,
               second_size: tuple[int, int] | None = None, name: str = "stamped") -> Clip:
    """`stamped_clip` for a clip already rendered (the benchmark renders its own)."""
    originals: list[np.ndarray] = []
    _encode(source, out / f"{name}.ts", size, fps, 0, originals)
    if second_size is not None:
        _encode(source, out / f"{name}_small.ts", second_size, fps, SECOND, [])
    return Clip(out / f"{name}.ts", read_clip_truth(gt, *size), originals, size, fps)


def _encode(source: Path, target: Path, size: tuple[int, int], fps: int, first: int,
            originals: list[np.ndarray]) -> None:
    with av.open(str(source)) as src, av.open(str(target), "w", format="mpegts") as dst:
        video = dst.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "veryfast",
                                                           "bf": "0", "g": str(fps)})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = dst.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        packets = []
        for index, frame in enumerate(src.decode(src.streams.video[0])):
            image = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            for plane, rows, value in ((0, size[1], 128), (1, size[1] // 2, 128), (2, size[1] // 2, 128)):
                p = np.frombuffer(image.planes[plane], np.uint8).reshape(-1, image.planes[plane].line_size)
                p[rows - band(rows * (2 if plane else 1)) // (2 if plane else 1):rows] = value
            y = np.frombuffer(image.planes[0], np.uint8).reshape(-1, image.planes[0].line_size)
            stamp(y[:size[1], :size[0]], first + index)
            originals.append(y[:size[1], :size[0]].copy())
            image.pts = index
            image.time_base = Fraction(1, fps)
            packets += video.encode(image)
        packets += video.encode(None)
        with av.open(str(source)) as again:
            for frame in again.decode(again.streams.audio[0]):
                frame.pts = None
                packets += audio.encode(frame)
        packets += audio.encode(None)
        packets.sort(key=lambda p: float((p.dts or 0) * p.time_base))
        dst.mux(packets)


@dataclass
class Verdict:
    """What a viewer saw, frame by frame, judged against the ground truth."""

    frames: int = 0
    curtains: int = 0
    unreadable: int = 0  # not a curtain, stamp masked over: counted, never passed as a face frame
    checked: int = 0
    face_frames: int = 0
    covered: int = 0
    bare: list[tuple[int, int]] = field(default_factory=list)  # (output frame, input frame) uncovered
    numbers: list[int] = field(default_factory=list)
    pts: list[float] = field(default_factory=list)

    def add(self, luma: np.ndarray, clip: Clip, pts: float | None = None) -> None:
        self.frames += 1
        if pts is not None:
            self.pts.append(pts)
        if is_curtain(luma):
            self.curtains += 1
            return
        number = read_stamp(luma)
        if number is not None and number >= SECOND:  # the second-size copy, scaled back by veil
            number -= SECOND
        if number is None or number >= len(clip.truth):
            self.unreadable += 1
            return
        self.checked += 1
        self.numbers.append(number)
        truth = clip.truth[number]
        original = clip.originals[number]
        # A pixel is masked when veil blacked it out: dark now, and not already dark before.
        masked = (luma <= 40) | (original <= 40)
        boxes, shown = above_band(truth.boxes_xyxy, luma.shape[0])
        fractions = covered_fractions(boxes, masked)
        for height, fraction, seen in zip(truth.boxes[:, 3], fractions, shown):
            if height < MIN_FACE or not seen:
                continue
            self.face_frames += 1
            if fraction >= COVERED_FRACTION:
                self.covered += 1
            else:
                self.bare.append((self.frames - 1, number))

    @property
    def covered_fraction(self) -> float:
        return self.covered / self.face_frames if self.face_frames else 1.0


def judge_file(path: Path, clip: Clip) -> Verdict:
    verdict = Verdict()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            y = frame.reformat(format="yuv420p").to_ndarray()[:frame.height]
            verdict.add(y, clip, frame.time)
    return verdict


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM a server, and SIGKILL it if it has not gone within 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Nginx:
    """Debian's nginx with the RTMP module, on a free loopback port, in a private folder."""

    def __init__(self, folder: Path, port: int | None = None, http_root: Path | None = None) -> None:
        """With `http_root`, nginx also serves that folder over plain HTTP on `http_port` (HLS)."""
        self.port = port or free_port()
        self.http_port = free_port() if http_root is not None else 0
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "nginx.conf"
        http = ("http {\n  access_log off;\n"
                "  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }\n"
                f"  server {{ listen 127.0.0.1:{self.http_port}; root {http_root}; }}\n}}\n"
                if http_root is not None else "")
        conf.write_text(
            f"load_module {RTMP_MODULE};\n"
            "daemon off;\nmaster_process off;\n"
            f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log info;\n"
            "events { worker_connections 64; }\n"
            "rtmp { server {\n"
            f"  listen 127.0.0.1:{self.port};\n  chunk_size 4096;\n"
            "  application live { live on; record off; wait_key on; }\n"
            "  application closed { live on; deny publish all; }\n"
            "} }\n" + http)
        self.process = subprocess.Popen(
            [str(NGINX), "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.process.stderr.read() if self.process.stderr else ''}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen within 10 s")

    def url(self, key: str, app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}/{key}"

    def stop(self) -> None:
        stop_process(self.process)


class Publisher(threading.Thread):
    """Streams clips' packets, one after the other, to an RTMP URL in real time (as a phone app
    would); can drop the connection after `cut_after` seconds or pause for `stall_for` seconds
    after `stall_after` seconds of stream time with the connection held open."""

    def __init__(self, paths: list[Path], url: str, cut_after: float | None = None,
                 stall_after: float | None = None, stall_for: float = 0.0, fmt: str = "flv") -> None:
        super().__init__(daemon=True, name="test-publisher")
        self.paths, self.url, self.fmt = paths, url, fmt
        self.cut_after, self.stall_after, self.stall_for = cut_after, stall_after, stall_for
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.sent = 0
        self.done = threading.Event()
        self.attempts: list[str] = []

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - read by the test
            self.error = exc
        finally:
            self.done.set()

    def _run(self) -> None:
        deadline = time.monotonic() + 15
        while True:  # the listener (veil --listen) may not be up yet; PyAV connects at the header
            out = av.open(self.url, "w", format=self.fmt, timeout=5)
            with av.open(str(self.paths[0])) as first:
                kinds = {s.type: out.add_stream_from_template(s) for s in first.streams
                         if s.type in ("video", "audio")}
            try:
                out.start_encoding()
                break
            except (av.error.FFmpegError, OSError) as exc:
                self.attempts.append(repr(exc))
                with contextlib.suppress(Exception):
                    out.close()
                if time.monotonic() > deadline or self.stop_event.is_set():
                    raise
                time.sleep(0.2)
        with out:
            started = time.monotonic()
            offset = 0.0
            stalled = False
            for path in self.paths:
                last = 0.0
                with av.open(str(path)) as src:
                    base: float | None = None
                    for packet in src.demux(list(src.streams)):
                        if packet.dts is None or packet.stream.type not in kinds:
                            continue
                        t_in = float(packet.dts * packet.time_base)
                        base = t_in if base is None else base
                        t = t_in - base + offset
                        last = max(last, t)
                        if self.cut_after is not None and time.monotonic() - started > self.cut_after:
                            return
                        if self.stall_after is not None and not stalled and t > self.stall_after:
                            stalled = True
                            if self.stop_event.wait(self.stall_for):
                                return
                            started += self.stall_for
                        wait = started + t - time.monotonic()
                        if wait > 0 and self.stop_event.wait(wait):
                            return
                        stream = kinds[packet.stream.type]
                        pts = packet.pts if packet.pts is not None else packet.dts
                        pts_s = float(pts * packet.time_base) - base + offset
                        packet.dts, packet.pts = round(t * 90000), round(pts_s * 90000)
                        packet.time_base = Fraction(1, 90000)
                        packet.stream = stream
                        out.mux(packet)
                        self.sent += 1
                offset = last + 1 / 30


def udp_bound(port: int) -> bool:
    """True once some process (veil, a viewer) listens on UDP 127.0.0.1:port: datagrams sent
    before that are lost, so a test waits for it before sending."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def remux(source: Path, target: Path, fmt: str, **options: str) -> None:
    """Copy a clip's video and audio packets into another container (MP4 for the RTSP server,
    an HLS playlist with its segments), without re-encoding."""
    with av.open(str(source)) as src, av.open(str(target), "w", format=fmt, options=options) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams
                   if s.type in ("video", "audio")}
        for packet in src.demux(list(src.streams)):
            if packet.dts is None or packet.stream.index not in streams:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)


RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def rtsp_server_missing() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None."""
    if not SYSTEM_PYTHON.exists():
        return "no /usr/bin/python3"
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
                            "from gi.repository import GstRtspServer"],
                           capture_output=True, text=True, timeout=30)
    return probe.stderr.strip().splitlines()[-1] if probe.returncode else None


class RtspServer:
    """GStreamer's RTSP server (tests/rtsp_server.py) serving one clip on a free loopback port."""

    def __init__(self, clip: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        mp4 = folder / "camera.mp4"
        remux(clip, mp4, "mp4")
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/camera"
        self.process = subprocess.Popen([str(SYSTEM_PYTHON), str(RTSP_SERVER), str(mp4), str(self.port),
                                         "/camera"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "ready", or nothing if it failed
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {self.process.stderr.read() if self.process.stderr else ''}")

    def stop(self) -> None:
        stop_process(self.process)


class Viewer(threading.Thread):
    """Pulls a stream and judges every frame against the clip's ground truth."""

    def __init__(self, url: str, clip: Clip, wait_s: float = 15.0, **options: str) -> None:
        super().__init__(daemon=True, name="test-viewer")
        self.url, self.clip, self.wait_s, self.options = url, clip, wait_s, options
        self.verdict = Verdict()
        self.error: BaseException | None = None
        self.sizes: set[tuple[int, int]] = set()

    def run(self) -> None:
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            try:
                with av.open(self.url, timeout=(5, 5), options=self.options) as container:
                    for frame in container.decode(video=0):
                        self.sizes.add((frame.width, frame.height))
                        y = frame.reformat(format="yuv420p").to_ndarray()[:frame.height]
                        if (frame.width, frame.height) == self.clip.size:
                            self.verdict.add(y, self.clip, frame.time)
                        else:
                            self.verdict.frames += 1
                return
            except (av.error.FFmpegError, OSError) as exc:
                self.error = exc
                time.sleep(0.2)


def veil_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env
