"""Issue 18: can `thorough` mask at most 3x the face area on the dev photos and keep every face?

    .venv/bin/python benchmarks/hard_sets.py --sets closeup,rotated --presets ""   # build the sets (once)
    .venv/bin/python benchmarks/thorough_replay.py            # cache every pass (long, once), then the table

`thorough` runs CenterFace at full and 1.5x scale, a 640 px and a 288 px pass, on the photo and on
the photo turned 90, 180 and 270 degrees. Each of those passes is run once per image with a score floor
of 0.02 and cached under test-artifacts/ (git-ignored: WIDER derivatives are never committed),
keyed by the pixels it saw and its scale. Each rule is then replayed through veil's own code
(`FaceDetector.__call__`'s thresholds and NMS, `Rotated`'s views, `scan_image`'s plan with the
preset's sure-box margins), with only the cached passes standing in for the network: a pass keeps
every box a higher floor would, and a box under the floor can only suppress boxes under it too,
so the replay equals a fresh run (the "as now" row reproduces `hard_sets.py`'s thorough figures).

Sets: the 183 dev photos (the area goal and the buckets that must not fall), the rotated set
(every --stride-th dev photo turned 0, 90, 180 and 270 degrees; buckets by upright height, as
hard_sets.py scores it) and the close-up set.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from veil import presets  # noqa: E402
from veil._types import Config, Detections, DetectPreset, MaskRegions  # noqa: E402
from veil.detect.faces import DetectorSettings, FaceDetector  # noqa: E402
from veil.detect.rotate import SIDEWAYS, Rotated  # noqa: E402
from veil.evaluate import EvalReport, FrameScore, FrameTruth, read_annotations, score_plan, summarise  # noqa: E402
from veil.media.image import read_image  # noqa: E402
from veil.pipeline import scan_image  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "wider_dev" / "gt.jsonl"
HARD = ROOT / "test-artifacts" / "hard_sets"
CACHE = ROOT / "test-artifacts" / "thorough-passes.pkl"
FLOOR = 0.02
Pass = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes, scores, landmarks


class ReplayDetector(FaceDetector):
    """`FaceDetector` with its passes read from (or added to) a cache of floor-0.02 passes."""

    def __init__(self, settings: DetectorSettings, cache: dict[tuple[str, float], Pass]) -> None:
        super().__init__(settings)
        self.cache = cache
        self._raw = FaceDetector(replace(settings, thresholds=(FLOOR,) * 4, coarse_min_score=0.0))

    def _detect_pass(self, frame: np.ndarray, scale: float) -> Detections:
        key = (hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).hexdigest(), round(scale, 6))
        if key not in self.cache:
            found = self._raw._detect_pass(frame, scale)
            self.cache[key] = (found.boxes, found.scores, found.landmarks)
        boxes, scores, landmarks = self.cache[key]
        keep = scores >= self.settings.decode_floor * self.settings.edge_scale
        return Detections(boxes[keep], scores[keep], landmarks[keep])


class TieredRotated(Rotated):
    """`Rotated` with the sideways views' floor per size tier (< 16, 16-32, 32-64, >= 64 px)."""

    def __init__(self, detector: FaceDetector, floors: tuple[float, float, float, float]) -> None:
        super().__init__(detector, presets.ROTATIONS[DetectPreset.THOROUGH], min(floors))
        self.floors = DetectorSettings(thresholds=floors)

    def _sideways(self, found: Detections, seen: Detections, floors: tuple[float, float]) -> Detections:
        return found[self.floors.keep(found)]


@dataclass(frozen=True)
class Rule:
    label: str
    thresholds: tuple[float, float, float, float] = presets.STILL[DetectPreset.THOROUGH].thresholds
    rotated_min: float | tuple[float, float, float, float] = presets.ROTATED_MIN_SCORE
    sure: tuple[float, float, float] | None = presets.SURE_MARGINS[DetectPreset.THOROUGH]
    support: int = presets.STILL[DetectPreset.THOROUGH].support_passes  # DetectorSettings.support_passes
    edge: int = presets.STILL[DetectPreset.THOROUGH].edge_support_passes  # DetectorSettings.edge_support_passes
    coarse: tuple[int, ...] = presets.STILL[DetectPreset.THOROUGH].coarse_sides  # DetectorSettings.coarse_sides
    large: float = presets.ROTATED_LARGE_MIN_SCORE  # Rotated's large_min_score
    cap: float = presets.STILL[DetectPreset.THOROUGH].upscaled_max_height  # DetectorSettings.upscaled_max_height
    turns: tuple[int, ...] = presets.ROTATIONS[DetectPreset.THOROUGH]  # the turned views (quarter turns)
    upside: tuple[float, float] | None = presets.UPSIDE_DOWN_MIN_SCORES  # Rotated's upside_down


OLD = (0.05, 0.05, 0.06, 0.1)  # thorough's tiers before this benchmark; its sideways floor was 0.15
NEW = (0.05, 0.05, 0.08, 0.1)
RULES = [
    Rule("as now"),
    Rule("before (sideways floor 0.15, 32-64 at 0.06)", thresholds=OLD, rotated_min=0.15),
    Rule(">= 64 px at 0.15", thresholds=(0.05, 0.05, 0.06, 0.15), rotated_min=0.15),
    Rule(">= 64 px at 0.2", thresholds=(0.05, 0.05, 0.06, 0.2), rotated_min=0.15),
    Rule("32-64 at 0.08, >= 64 at 0.15", thresholds=(0.05, 0.05, 0.08, 0.15), rotated_min=0.15),
    Rule("32-64 at 0.1, >= 64 at 0.2", thresholds=(0.05, 0.05, 0.1, 0.2), rotated_min=0.15),
    Rule("sure boxes from 0.2", thresholds=OLD, rotated_min=0.15, sure=(0.2, 0.6, 0.35)),
    Rule("sure boxes x0.5", thresholds=OLD, rotated_min=0.15, sure=(0.3, 0.5, 0.35)),
    Rule("sideways floor 0.2", thresholds=OLD, rotated_min=0.2),
    Rule("sideways floor 0.25", thresholds=OLD, rotated_min=0.25),
    Rule("sideways floor 0.3", thresholds=OLD, rotated_min=0.3),
    Rule("sideways floor 0.25, 32-64 at 0.08 (adopted)", thresholds=NEW, rotated_min=0.25),
    Rule("sideways floor 0.25, 32-64 at 0.09", thresholds=(0.05, 0.05, 0.09, 0.1), rotated_min=0.25),
    Rule("sideways floor 0.25, 32-64 at 0.1", thresholds=(0.05, 0.05, 0.1, 0.1), rotated_min=0.25),
    Rule("sideways floor 0.3, 32-64 at 0.08", thresholds=NEW, rotated_min=0.3),
    Rule("no sideways boxes but the standing view's, 32-64 at 0.08", thresholds=NEW, rotated_min=0.999),
    Rule("sideways floor 0.25, but 0.4 for >= 64 px; 32-64 at 0.08", thresholds=NEW,
         rotated_min=(0.25, 0.25, 0.25, 0.4)),
    Rule("as now, support of 3 passes", support=3),
    Rule(">= 64 px at 0.15, support of 3 passes", thresholds=(0.05, 0.05, 0.08, 0.15), support=3),
    Rule(">= 64 px at 0.2, support of 3 passes", thresholds=(0.05, 0.05, 0.08, 0.2), support=3),
    Rule("32-64 at 0.1, >= 64 at 0.2, support of 3 passes", thresholds=(0.05, 0.05, 0.1, 0.2), support=3),
    Rule("sideways floor 0.25, but 0.4 for >= 64 px; support of 3 passes", thresholds=NEW,
         rotated_min=(0.25, 0.25, 0.25, 0.4), support=3),
    Rule("as now, support at the edge of 2 passes", edge=2),
    Rule("as now, support at the edge of 3 passes", edge=3),
    Rule("as now, + 160 px pass", coarse=(presets.COARSE_SIDE, presets.CLOSEUP_SIDE)),
    Rule("as now, + 160 px pass, support at the edge of 2 passes", coarse=(presets.COARSE_SIDE, presets.CLOSEUP_SIDE),
         edge=2),
    Rule("before the seventh round (no large-sideways rule, no cap)", large=0.0, cap=0.0),
    Rule("large sideways boxes need 0.4 or upright evidence", cap=0.0),
    Rule("1.5x pass capped at 256 px", large=0.0),
    Rule("large sideways boxes need 0.4, no upright evidence", large=0.4, cap=0.0, rotated_min=(0.25, 0.25, 0.25, 0.4)),
    Rule("as now, 1.5x pass capped at 192 px", cap=192.0),
    Rule("as now, large sideways boxes need 0.5 or upright evidence", large=0.5),
    Rule("as now, without the upside-down view", turns=SIDEWAYS),
    Rule("as now, the upside-down view at the sideways floors", upside=None),
    Rule("as now, the upside-down view's large boxes need 0.6", upside=(0.4, 0.6)),
]


@contextmanager
def sure_margins(value: tuple[float, float, float] | None) -> Iterator[None]:
    old = presets.SURE_MARGINS[DetectPreset.THOROUGH]
    presets.SURE_MARGINS[DetectPreset.THOROUGH] = value
    try:
        yield
    finally:
        presets.SURE_MARGINS[DetectPreset.THOROUGH] = old


def replay_plans(rule: Rule, truths: list[FrameTruth], folder: Path, cache: dict,
                 pixels: dict[str, np.ndarray]) -> Iterator[tuple[FrameTruth, Detections, MaskRegions]]:
    """Each image's detections and plan under the rule, as `scan_image` makes them."""
    settings = replace(presets.STILL[DetectPreset.THOROUGH], thresholds=rule.thresholds,
                       support_passes=rule.support, edge_support_passes=rule.edge, coarse_sides=rule.coarse,
                       upscaled_max_height=rule.cap)
    detector = ReplayDetector(settings, cache)
    config = Config(detect=DetectPreset.THOROUGH)
    with sure_margins(rule.sure):
        for truth in truths:
            if truth.image not in pixels:
                pixels[truth.image] = read_image(folder / truth.image).pixels
            turned = (Rotated(detector, rule.turns, rule.rotated_min, large_min_score=rule.large,
                              upside_down=rule.upside)
                      if isinstance(rule.rotated_min, float) else TieredRotated(detector, rule.rotated_min))
            yield (truth, *scan_image(pixels[truth.image], config, detector=turned))


def run_rule(rule: Rule, truths: list[FrameTruth], folder: Path, cache: dict, pixels: dict[str, np.ndarray],
             upright_heights: bool = False) -> list[FrameScore]:
    scores = []
    for truth, detections, plan in replay_plans(rule, truths, folder, cache, pixels):
        score = score_plan(truth, detections, plan)
        if upright_heights and truth.image.startswith(("rot090/", "rot270/")):
            score = replace(score, heights=truth.boxes[:, 2].copy())
        scores.append(score)
    return scores


def cells(report: EvalReport) -> str:
    return " ".join(f"{b.covered}/{b.faces}" for b in report.buckets[:4]) + f" {report.area_ratio:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=6, help="rotated set: every N-th dev photo")
    parser.add_argument("--sets", default="dev,rotated,closeup")
    parser.add_argument("--rotations", default="0,90,180,270", help="rotated: which turns to score")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--rules", default="", help="comma-separated rule numbers (default: all)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images of each set")
    args = parser.parse_args()
    sets: dict[str, tuple[list[FrameTruth], Path]] = {}
    wanted = args.sets.split(",")
    missing = [name for name in ("rotated", "closeup") if name in wanted and not (HARD / f"{name}.gt.jsonl").is_file()]
    if missing or not DEV.is_file():
        print(f"needs ../shared/data and the sets {missing} (benchmarks/hard_sets.py --presets '')", file=sys.stderr)
        return 2
    if "dev" in wanted:
        sets["dev"] = (read_annotations(DEV), DEV.parent)
    if "rotated" in wanted:
        rotated = read_annotations(HARD / "rotated.gt.jsonl")
        keep = {Path(t.image).name for t in rotated[::4][::args.stride]}
        for folder in [f"rot{int(r):03d}" for r in args.rotations.split(",")]:
            sets[f"rotated {folder[3:]}"] = ([t for t in rotated if t.image.startswith(folder + "/")
                                              and Path(t.image).name in keep], HARD)
    if "closeup" in wanted:
        sets["close-up"] = (read_annotations(HARD / "closeup.gt.jsonl"), HARD)
    if args.limit:
        sets = {name: (truths[:args.limit], folder) for name, (truths, folder) in sets.items()}
    cache: dict = pickle.loads(args.cache.read_bytes()) if args.cache.is_file() else {}
    rules = [RULES[int(i)] for i in args.rules.split(",")] if args.rules else RULES
    pixels: dict[str, np.ndarray] = {}
    print("| rule | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for rule in rules:
        row = []
        for name, (truths, folder) in sets.items():
            before = len(cache)
            report = summarise(run_rule(rule, truths, folder, cache, pixels, name.startswith("rotated")))
            if len(cache) > before:
                args.cache.parent.mkdir(parents=True, exist_ok=True)
                args.cache.write_bytes(pickle.dumps(cache))
            row.append(cells(report))
        print(f"| {rule.label} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
