"""Close-up and rotated sets built from the WIDER dev photos, and veil's covered recall on them.

    .venv/bin/python benchmarks/hard_sets.py                               # build (once) + score both
    .venv/bin/python benchmarks/hard_sets.py --sets closeup --presets balanced
    .venv/bin/python benchmarks/hard_sets.py --sets rotated --presets thorough --stride 2

- close-up: for every dev face at least --min-face px tall, two crops in which that face fills
  40-100 % of the crop's height, resized to 720 px high (what a person walking up to a body-worn
  or phone camera looks like): one with the face whole, one with it cut off by the top or a side
  edge. Aspect ratios cycle 16:9, 4:3 and 3:4. Every annotated face in the crop is ground truth,
  clipped to it; a face of which less than half is inside goes to the ignore regions.
- rotated: the dev photos turned 0, 90, 180 and 270 degrees (np.rot90, counter-clockwise), boxes
  turned with them. The 0 row is the same JPEG re-encoding, upright, so the rows compare alike.

The images are derivatives of non-commercial research data: they are written to a git-ignored
folder (--out, default test-artifacts/hard_sets) and must never be committed. Scoring is
veil.evaluate's, the same as benchmarks/eval_recall.py's: covered recall per face-height bucket,
masked area over annotated face area, and seconds per image of detection + planning.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_recall import DEFAULT_GT  # noqa: E402

from veil._types import Config, DetectPreset  # noqa: E402
from veil.detect.rotate import rotate_boxes, rotate_frame  # noqa: E402
from veil.evaluate import EvalReport, FrameTruth, read_annotations  # noqa: E402

DEFAULT_OUT = ROOT / "test-artifacts" / "hard_sets"
CLOSEUP_HEIGHT = 720
ASPECTS = (16 / 9, 4 / 3, 3 / 4)
MIN_VISIBLE = 0.5  # a clipped face with less of its area inside the crop is an ignore region
JPEG_QUALITY = 95


def _write_jpeg(path: Path, pixels: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def _row(image: str, boxes: np.ndarray, ignore: np.ndarray, width: int, height: int, **extra: object) -> str:
    def xywh(b: np.ndarray) -> list[list[float]]:
        return [[round(float(x1), 1), round(float(y1), 1), round(float(x2 - x1), 1), round(float(y2 - y1), 1)]
                for x1, y1, x2, y2 in b.reshape(-1, 4)]
    return json.dumps({"image": image, "boxes": xywh(boxes), "ignore": xywh(ignore),
                       "width": width, "height": height, **extra})


def crop_truth(truth: FrameTruth, window: tuple[float, float, float, float], scale: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """The truth's faces inside window (x1, y1, x2, y2), clipped, in the resized crop's pixels:
    (faces, ignore). A face less than MIN_VISIBLE inside is an ignore region: a sliver at the
    edge cannot be told from the background and is not what the set measures."""
    x1, y1, x2, y2 = window
    out: dict[bool, list[np.ndarray]] = {True: [], False: []}
    for boxes, is_face in ((truth.boxes_xyxy, True), (truth.ignore_xyxy, False)):
        for b in boxes:
            c = np.array([max(b[0], x1), max(b[1], y1), min(b[2], x2), min(b[3], y2)])
            if c[2] <= c[0] or c[3] <= c[1]:
                continue
            area = (b[2] - b[0]) * (b[3] - b[1])
            visible = (c[2] - c[0]) * (c[3] - c[1]) / area if area > 0 else 0.0
            out[is_face and visible >= MIN_VISIBLE].append((c - [x1, y1, x1, y1]) * scale)
    return (np.array(out[True]).reshape(-1, 4), np.array(out[False]).reshape(-1, 4))


def closeup_window(face: np.ndarray, fill: float, aspect: float, cut: str, cut_share: float,
                   width: int, height: int) -> tuple[float, float, float, float] | None:
    """A crop window (x1, y1, x2, y2) in which `face` (xyxy) is fill of the crop's height, centred,
    or cut off by the top ("top") or a side ("left", "right") edge by cut_share of its size; None
    where the photo is too small for it."""
    fx1, fy1, fx2, fy2 = face
    fw, fh = fx2 - fx1, fy2 - fy1
    ch = fh / fill
    cw = ch * aspect
    if cw > width or ch > height:
        shrink = min(width / cw, height / ch)
        cw, ch = cw * shrink, ch * shrink
        if fh / ch > 1.0:
            return None
    cx, cy = (fx1 + fx2) / 2, (fy1 + fy2) / 2
    x1, y1 = cx - cw / 2, cy - ch / 2
    if cut == "top":
        y1 = fy1 + cut_share * fh
    elif cut == "left":
        x1 = fx1 + cut_share * fw
    elif cut == "right":
        x1 = fx2 - cut_share * fw - cw
    x1 = min(max(x1, 0.0), width - cw)
    y1 = min(max(y1, 0.0), height - ch)
    window = (x1, y1, x1 + cw, y1 + ch)
    # Clamping into the photo may undo the cut: keep the window only if the face is still cut.
    if cut == "top" and not y1 > fy1 + 0.1 * fh:
        return None
    if cut == "left" and not x1 > fx1 + 0.1 * fw:
        return None
    if cut == "right" and not x1 + cw < fx2 - 0.1 * fw:
        return None
    return window


def build_closeup(truths: list[FrameTruth], images: Path, out: Path, min_face: float, seed: int) -> int:
    """Writes the close-up crops and out/gt.jsonl; returns the number of crops."""
    import cv2

    from veil.media.image import read_image

    rng = np.random.default_rng(seed)
    rows, n = [], 0
    for truth in truths:
        big = [b for b in truth.boxes_xyxy if b[3] - b[1] >= min_face]
        if not big:
            continue
        pixels = read_image(images / truth.image).pixels
        for face in big:
            for cut in ("none", ("top", "left", "right")[n % 3]):
                fill = float(rng.uniform(0.4, 1.0))
                aspect = ASPECTS[n % len(ASPECTS)]
                window = closeup_window(face, fill, aspect, cut, float(rng.uniform(0.15, 0.4)),
                                        truth.width, truth.height)
                n += 1
                if window is None:
                    continue
                x1, y1, x2, y2 = (int(round(v)) for v in window)
                scale = CLOSEUP_HEIGHT / (y2 - y1)
                w = max(1, int(round((x2 - x1) * scale)))
                crop = cv2.resize(pixels[y1:y2, x1:x2], (w, CLOSEUP_HEIGHT), interpolation=cv2.INTER_CUBIC
                                  if scale > 1 else cv2.INTER_AREA)
                faces, ignore = crop_truth(truth, (x1, y1, x2, y2), scale)
                name = f"closeup/{Path(truth.image).stem}_{n:04d}_{cut}.jpg"
                _write_jpeg(out / name, crop)
                rows.append(_row(name, faces, ignore, w, CLOSEUP_HEIGHT, cut=cut, fill=round(fill, 3)))
    (out / "closeup.gt.jsonl").write_text("\n".join(rows) + "\n")
    return len(rows)


def build_rotated(truths: list[FrameTruth], images: Path, out: Path) -> int:
    """Writes each photo turned 0, 90, 180 and 270 degrees and out/rotated.gt.jsonl."""
    from veil.media.image import read_image

    rows = []
    for truth in truths:
        pixels = read_image(images / truth.image).pixels
        for turns in range(4):
            turned = rotate_frame(pixels, turns)
            name = f"rot{turns * 90:03d}/{truth.image.removeprefix('images/')}"
            _write_jpeg(out / name, turned)
            rows.append(_row(name, rotate_boxes(truth.boxes_xyxy, turns, truth.width, truth.height),
                             rotate_boxes(truth.ignore_xyxy, turns, truth.width, truth.height),
                             turned.shape[1], turned.shape[0], turns=turns))
    (out / "rotated.gt.jsonl").write_text("\n".join(rows) + "\n")
    return len(rows)


def score_groups(groups: dict[str, list[FrameTruth]], folder: Path, config: Config, preset: str,
                 upright_heights: bool = False) -> list[EvalReport]:
    """One report per group, each image detected once however many groups hold it."""
    import time

    from veil.evaluate import score_plan, summarise
    from veil.media.image import read_image
    from veil.pipeline import scan_image

    done: dict[str, tuple[object, float]] = {}
    reports = []
    for label, group in groups.items():
        scores, seconds = [], 0.0
        for truth in group:
            if truth.image not in done:
                pixels = read_image(folder / truth.image).pixels
                started = time.perf_counter()
                detections, plan = scan_image(pixels, config)
                took = time.perf_counter() - started
                score = score_plan(truth, detections, plan)
                if upright_heights and truth.image.startswith(("rot090/", "rot270/")):
                    # Bucket each face by its upright height (the turned box's width), so that
                    # every row holds the same faces and compares with the upright one.
                    score = replace(score, heights=truth.boxes[:, 2].copy())
                done[truth.image] = (score, took)
            score, took = done[truth.image]
            scores.append(score)
            seconds += took
        reports.append(summarise(scores, seconds, f"{label} {preset}"))
    return reports


def line(report: EvalReport) -> str:
    cells = " | ".join(f"{b.covered_recall:.3f} ({b.faces})" if b.faces else "-" for b in report.buckets)
    per_image = report.seconds / report.frames if report.frames else float("nan")
    return f"| {report.label} | {cells} | {report.area_ratio:.2f}x | {per_image:.2f} |"


def header(reports_buckets: list[str]) -> str:
    head = ["", *[f"covered {n} (faces)" for n in reports_buckets], "mask/face area", "s/image"]
    return "| " + " | ".join(head) + " |\n|" + "---|" * len(head)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_GT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the sets are written")
    parser.add_argument("--sets", default="closeup,rotated")
    parser.add_argument("--presets", default="fast,balanced,thorough")
    parser.add_argument("--min-face", type=float, default=120.0, help="close-up: smallest source face (px)")
    parser.add_argument("--rotations", default="0,90,180,270", help="rotated: which turns to score")
    parser.add_argument("--stride", type=int, default=1, help="rotated: every N-th dev photo")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--roll", action="store_true", help="Config.roll: every preset also searches sideways")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=20261204,
                        help="close-up: the crops' random fill and cut (another seed, with another --out, "
                             "gives a second sample of crops to check a rule on)")
    args = parser.parse_args()
    if not args.annotations.is_file():
        print(f"no annotations at {args.annotations}", file=sys.stderr)
        return 2
    dev = read_annotations(args.annotations)
    images = args.annotations.parent
    sets = [s for s in args.sets.split(",") if s]
    results = []
    for name in sets:
        gt = args.out / f"{name}.gt.jsonl"
        if args.rebuild or not gt.is_file():
            print(f"building {name} in {args.out} ...", file=sys.stderr, flush=True)
            built = (build_closeup(dev, images, args.out, args.min_face, args.seed) if name == "closeup"
                     else build_rotated(dev, images, args.out))
            print(f"  {built} images", file=sys.stderr)
        truths = read_annotations(gt)
        groups: dict[str, list[FrameTruth]] = {}
        if name == "closeup":
            groups["closeup"] = truths
            groups["closeup edge-cut"] = [t for t in truths if not t.image.endswith("_none.jpg")]
        else:
            wanted = {f"rot{int(r):03d}" for r in args.rotations.split(",")}
            keep = {Path(t.image).name for t in truths[::4][::args.stride]}
            for t in truths:
                folder = t.image.split("/")[0]
                if folder in wanted and Path(t.image).name in keep:
                    groups.setdefault(f"rotated {folder[3:]}", []).append(t)
        for preset in [p for p in args.presets.split(",") if p]:
            config = Config(detect=DetectPreset(preset), threads=args.threads, roll=args.roll)
            print(f"\n{name}, {preset}:\n" + header(["<16", "16-32", "32-64", "64+", ">=32", "all"]),
                  flush=True)
            for report in score_groups(groups, args.out, config, preset, name == "rotated"):
                print(line(report), flush=True)
                results.append(report.to_json())
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
