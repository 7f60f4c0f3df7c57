"""Prove a refactor changed no output: record what veil produces before it, record again after, compare.

A restructuring (one pipeline core for stills and video) must leave every scan report and every
redacted pixel exactly as it was. Tests check properties (a face is covered, a frame count is
kept); they do not notice a box that moved by a pixel or a score that changed in the fourth
decimal. This records everything veil outputs on a fixed input set, through veil's PUBLIC API only
(`veil.Config`, `veil.scan_file`, `veil.redact_file`, preset strings), so the same script runs
unchanged on the old and the new code; which code runs is chosen by PYTHONPATH alone (the script
never puts this checkout's src/ on sys.path).

    # before: the old code, checked out elsewhere
    PYTHONPATH=/work/base/src python benchmarks/same_output.py record /work/same_output_before.jsonl
    # after: this checkout
    PYTHONPATH=$PWD/src python benchmarks/same_output.py record /tmp/same_output_after.jsonl
    python benchmarks/same_output.py compare /work/same_output_before.jsonl /tmp/same_output_after.jsonl

    record OUT.jsonl [--presets fast,balanced,thorough] [--limit N] [--clips-dir DIR]
    compare A.jsonl B.jsonl [--show 5] [--rounded]

One JSON line per record, each with "section", "preset" and "key":

- scan-photo: every photo of ../shared/data/wider_dev/gt.jsonl, `scan_file(photo, Config(detect=preset))`;
  "scan" is FrameScan.to_json() with the path relative to wider_dev/ (what `veil scan` prints), and
  "exact" the same faces at full float precision (to_json rounds boxes to 0.1 px and scores to 4
  decimals, which would hide a float change under the rounding).
- scan-clip: five clips rendered by make_clips.py (5 x 2 s, 640x360, seed 7) into --clips-dir
  (default .cache/same_output_clips/, git-ignored, reused when present), every frame of
  `scan_file(clip, ...)`, keyed "<clip>#<frame>". make_clips.py renders them byte-identically each
  time (checked), so another checkout's default folder serves as well; input-clip shows it did.
- pixels-photo: every 10th photo, `redact_file(photo, tmp/<name>.jpg, Config(detect=preset))` with
  the default solid mask; SHA-256 of the decoded output pixels, of the file's bytes, and the report's
  deterministic fields (not its paths or seconds).
- pixels-clip: every clip redacted to tmp/<clip>.mp4; SHA-256 over all decoded frames
  (PyAV rgb24), over their timestamps, over the decoded audio, and of the file's bytes.
- input-clip (preset "-"): SHA-256 of each rendered clip, so a compare can tell changed inputs
  from changed outputs; meta (not compared): which veil ran, library versions, the time taken.

`compare` prints per section and preset how many keys are identical, differ, or are missing on
either side, the first few differences (for scans: which faces' box/score/mask differ, and whether
only the full-precision values did), and exits 1 if anything differs, else 0. `--rounded`
compares scans only as `veil scan` prints them (to_json), ignoring sub-rounding float changes.

The recorded file and the clips are derived from WIDER FACE (non-commercial, no derivatives):
keep them outside any repository or in git-ignored folders; never commit them.

A full record writes ~1530 lines (~89 MB) and took 36 min on the shared 2-core machine under load
(fast 2 min, balanced 12 min, thorough 22 min); a compare of two full files takes about a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
GT = DATA / "wider_dev" / "gt.jsonl"
DEFAULT_CLIPS_DIR = ROOT / ".cache" / "same_output_clips"
CLIPS = dict(count=5, seconds=2.0, size=(640, 360), seed=7)  # make_clips.py arguments
PIXEL_EVERY = 10  # redact every 10th photo: redaction re-runs detection, scans cover the rest
PROGRESS_EVERY = 20
SCAN_SECTIONS = ("scan-photo", "scan-clip")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- inputs -----------------------------------------------------------------------------------

def load_make_clips() -> Any:
    """../shared/data/make_clips.py as a module (it is not a package; as bench_video.py loads it)."""
    spec = importlib.util.spec_from_file_location("make_clips", DATA / "make_clips.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_clips"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def photos(limit: int | None) -> list[str]:
    """gt.jsonl's image paths (relative to wider_dev/), in the file's order."""
    images = [json.loads(line)["image"] for line in GT.read_text().splitlines() if line.strip()]
    return images[:limit] if limit is not None else images


def clips(folder: Path) -> list[Path]:
    """The fixed clip set, rendered once into `folder` and reused after: the before and after
    runs must read the same files (input-clip records their hashes to prove it)."""
    listing = folder / "clips.json"
    if listing.exists():
        entries = json.loads(listing.read_text())
        paths = [folder / e["video"] for e in entries]
        if len(paths) == CLIPS["count"] and all(p.exists() for p in paths):
            log(f"reusing {len(paths)} clips in {folder}")
            return paths
    log(f"rendering {CLIPS['count']} clips into {folder} ...")
    entries = load_make_clips().make_clips(str(folder), **CLIPS)
    return [folder / e["video"] for e in entries]


# --- what veil outputs ------------------------------------------------------------------------

def exact_faces(scan: Any) -> list[list[Any]]:
    """The faces of a FrameScan at full precision (JSON floats round-trip exactly)."""
    return [[[float(v) for v in f.box], float(f.score), [int(v) for v in f.mask],
             int(getattr(f, "track", -1)), int(getattr(f, "source", 0))] for f in scan.faces]


def scan_line(section: str, preset: str, key: str, scan: Any, rel_path: str) -> dict[str, Any]:
    data = scan.to_json()
    data["path"] = rel_path
    return {"section": section, "preset": preset, "key": key, "scan": data, "exact": exact_faces(scan)}


REPORT_FIELDS = ("ok", "kind", "frames", "faces", "faces_per_frame", "frames_with_tracked_masks",
                 "lowest_score", "error")  # FileReport.to_json less path, output and seconds


def report_fields(report: Any) -> dict[str, Any]:
    data = report.to_json()
    return {k: data[k] for k in REPORT_FIELDS if k in data}


def image_digest(path: Path) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        pixels = np.asarray(im)
        mode = im.mode
    return {"sha256": sha256(pixels.tobytes()), "shape": list(pixels.shape), "mode": mode,
            "file_sha256": file_sha256(path)}


def video_digest(path: Path) -> dict[str, Any]:
    """Hashes of every decoded frame's RGB pixels, of the frames' timestamps and of the decoded
    audio: the output as a viewer gets it, apart from the container's bytes (hashed as well)."""
    import av

    pixels, stamps, audio = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    frames, shape, has_audio = 0, None, False
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        for frame in container.decode(video):
            array = frame.to_ndarray(format="rgb24")
            shape = list(array.shape)
            pixels.update(array.tobytes())
            stamps.update(f"{frame.pts},{frame.time_base};".encode())
            frames += 1
    with av.open(str(path)) as container:
        if container.streams.audio:
            has_audio = True
            for frame in container.decode(container.streams.audio[0]):
                audio.update(frame.to_ndarray().tobytes())
                audio.update(f"{frame.pts},{frame.sample_rate};".encode())
    return {"sha256": pixels.hexdigest(), "frames": frames, "shape": shape,
            "pts_sha256": stamps.hexdigest(),
            "audio_sha256": audio.hexdigest() if has_audio else None,
            "file_sha256": file_sha256(path)}


def meta() -> dict[str, Any]:
    import av
    import numpy as np
    import onnxruntime
    import PIL

    import veil

    return {"section": "meta", "preset": "-", "key": "meta", "veil": str(Path(veil.__file__).parent),
            "veil_version": getattr(veil, "__version__", None), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "av": av.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def record_lines(presets: list[str], limit: int | None, clips_dir: Path) -> Iterator[dict[str, Any]]:
    from veil import Config, redact_file, scan_file

    images = photos(limit)
    videos = clips(clips_dir)[:limit] if limit is not None else clips(clips_dir)
    for video in videos:
        yield {"section": "input-clip", "preset": "-", "key": video.name, "file_sha256": file_sha256(video)}
    wider = GT.parent
    with tempfile.TemporaryDirectory(prefix="same_output_") as tmp:
        for preset in presets:
            config = Config(detect=preset)
            started = time.perf_counter()
            for i, image in enumerate(images, 1):
                for scan in scan_file(wider / image, config):
                    yield scan_line("scan-photo", preset, image, scan, image)
                if i % PROGRESS_EVERY == 0 or i == len(images):
                    rate = i / (time.perf_counter() - started)
                    log(f"{preset}: scanned {i}/{len(images)} photos ({rate:.2f}/s)")
            for video in videos:
                t0 = time.perf_counter()
                n = 0
                for scan in scan_file(video, config):
                    yield scan_line("scan-clip", preset, f"{video.name}#{scan.frame}", scan, video.name)
                    n += 1
                log(f"{preset}: scanned {video.name}, {n} frames in {time.perf_counter() - t0:.1f} s")
            for i, image in enumerate(images[::PIXEL_EVERY], 1):
                source = wider / image
                out = Path(tmp) / f"{preset}_{source.name}"
                report = redact_file(source, out, config)
                yield {"section": "pixels-photo", "preset": preset, "key": image,
                       **image_digest(out), "report": report_fields(report)}
                out.unlink()
            log(f"{preset}: redacted {len(images[::PIXEL_EVERY])} photos")
            for video in videos:
                t0 = time.perf_counter()
                out = Path(tmp) / f"{preset}_{video.name}"
                report = redact_file(video, out, config)
                yield {"section": "pixels-clip", "preset": preset, "key": video.name,
                       **video_digest(out), "report": report_fields(report)}
                out.unlink()
                log(f"{preset}: redacted {video.name} in {time.perf_counter() - t0:.1f} s")
            log(f"{preset}: done in {time.perf_counter() - started:.0f} s")


def record(args: argparse.Namespace) -> int:
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    started = time.perf_counter()
    info = meta()
    log(f"veil from {info['veil']}; presets {presets}")
    counts: dict[str, int] = defaultdict(int)
    with open(args.out, "w") as f:
        f.write(json.dumps(info) + "\n")
        for line in record_lines(presets, args.limit, args.clips_dir):
            f.write(json.dumps(line) + "\n")
            f.flush()
            counts[line["section"]] += 1
        seconds = time.perf_counter() - started
        f.write(json.dumps({"section": "meta", "preset": "-", "key": "done", "seconds": round(seconds, 1),
                            "counts": dict(counts)}) + "\n")
    log(f"wrote {args.out} in {seconds:.0f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


# --- compare ----------------------------------------------------------------------------------

def load(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    lines: dict[tuple[str, str, str], dict[str, Any]] = {}
    for n, text in enumerate(Path(path).read_text().splitlines(), 1):
        if not text.strip():
            continue
        line = json.loads(text)
        if line["section"] == "meta":
            continue
        key = (line["section"], line["preset"], line["key"])
        if key in lines:
            raise SystemExit(f"{path}:{n}: {key} recorded twice")
        lines[key] = line
    return lines


def natural(key: tuple[str, str, str]) -> tuple[str, str, str, int]:
    """Order clip frames by number ("c.mp4#9" before "c.mp4#10") so the first differences listed are the earliest."""
    name, _, frame = key[2].rpartition("#")
    return (key[0], key[1], name, int(frame)) if name and frame.isdigit() else (key[0], key[1], key[2], -1)


def scan_differences(a: dict[str, Any], b: dict[str, Any], rounded: bool) -> list[str]:
    """What differs between two recordings of one frame's scan, face by face."""
    notes = []
    sa, sb = a["scan"], b["scan"]
    for field in sorted((set(sa) | set(sb)) - {"faces"}):
        if sa.get(field) != sb.get(field):
            notes.append(f"{field} {sa.get(field)!r} -> {sb.get(field)!r}")
    fa, fb = sa["faces"], sb["faces"]
    if len(fa) != len(fb):
        notes.append(f"{len(fa)} faces -> {len(fb)}")
    for i, (x, y) in enumerate(zip(fa, fb)):
        changed = [k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        if changed:
            notes.append(f"face {i}: " + ", ".join(f"{k} {x.get(k)} -> {y.get(k)}" for k in changed))
    if not notes and not rounded and a.get("exact") != b.get("exact"):
        ea, eb = a.get("exact") or [], b.get("exact") or []
        for i, (x, y) in enumerate(zip(ea, eb)):
            if x != y:
                names = [n for n, u, v in zip(("box", "score", "mask", "track", "source"), x, y) if u != v]
                notes.append(f"face {i} below to_json rounding: " + ", ".join(names)
                             + f" ({x[:2]} -> {y[:2]})")
        if len(ea) != len(eb):
            notes.append(f"exact: {len(ea)} faces -> {len(eb)}")
    return notes


def other_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def compare(args: argparse.Namespace) -> int:
    a, b = load(args.a), load(args.b)
    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(
        lambda: {"same": [], "differ": [], "only_a": [], "only_b": []})
    notes: dict[tuple[str, str, str], list[str]] = {}
    for key in sorted(set(a) | set(b), key=natural):
        group = groups[key[:2]]
        if key not in b:
            group["only_a"].append(key[2])
        elif key not in a:
            group["only_b"].append(key[2])
        else:
            if key[0] in SCAN_SECTIONS:
                found = scan_differences(a[key], b[key], args.rounded)
            else:
                found = other_differences(a[key], b[key])
            if found:
                group["differ"].append(key[2])
                notes[key] = found
            else:
                group["same"].append(key[2])
    failed = False
    print(f"A: {args.a}\nB: {args.b}")
    print(f"{'section':<14} {'preset':<10} {'identical':>9} {'differ':>7} {'only A':>7} {'only B':>7}")
    for (section, preset), group in sorted(groups.items()):
        print(f"{section:<14} {preset:<10} {len(group['same']):>9} {len(group['differ']):>7} "
              f"{len(group['only_a']):>7} {len(group['only_b']):>7}")
        failed |= bool(group["differ"] or group["only_a"] or group["only_b"])
    for (section, preset), group in sorted(groups.items()):
        if not (group["differ"] or group["only_a"] or group["only_b"]):
            continue
        print(f"\n{section} / {preset}:")
        for name in group["differ"][:args.show]:
            print(f"  {name}:")
            for note in notes[(section, preset, name)][:args.show]:
                print(f"    {note}")
        for side in ("only_a", "only_b"):
            if group[side]:
                shown = ", ".join(group[side][:args.show])
                print(f"  only in {side[-1].upper()} ({len(group[side])}): {shown}")
    print("\nDIFFERENT" if failed else "\nIDENTICAL")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run veil on the fixed inputs and write OUT.jsonl")
    rec.add_argument("out", type=Path)
    rec.add_argument("--presets", default="fast,balanced,thorough")
    rec.add_argument("--limit", type=int, help="only the first N photos (and at most N clips)")
    rec.add_argument("--clips-dir", type=Path, default=DEFAULT_CLIPS_DIR,
                     help="where the rendered clips live (WIDER derivatives: keep it git-ignored)")
    cmp = sub.add_parser("compare", help="compare two recordings; exit 1 if anything differs")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    cmp.add_argument("--show", type=int, default=5, help="differences listed per section and key")
    cmp.add_argument("--rounded", action="store_true",
                     help="compare scans as to_json prints them, ignoring sub-rounding float changes")
    args = parser.parse_args()
    return record(args) if args.command == "record" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
