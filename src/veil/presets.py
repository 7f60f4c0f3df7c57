"""Every tuned number of the detector stage, per preset and per kind of media, in one place.

The numbers were measured, not guessed: the method and the history of each choice are in
docs/benchmarks.md (stills: benchmarks/eval_recall.py on the WIDER dev photos; video:
benchmarks/bench_video.py and benchmarks/video_recall.py on rendered clips). The tracker's
linking constants, which no preset changes, are `track.TrackerSettings`'s defaults (a
`VideoDetectSettings` can replace them); the tracker's timing comes from `Config` (seconds)
through `tracker_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ._types import Config, DetectPreset
from .detect.faces import DetectorSettings
from .detect.rotate import SIDEWAYS, UPSIDE_DOWN
from .track import TrackerSettings

# -- stills ----------------------------------------------------------------------------------------

# Every still preset also runs a pass with the longer side at this many pixels, for a face that fills
# the frame (a close-up). On the close-up set (benchmarks/hard_sets.py, 201 crops of dev faces
# resized to 720 px high), one pass alone found (IoU 0.4, score >= 0.2; every 3rd crop, 89 faces)
# 0.89 of the faces at 160 px, 0.94 at 288 and 384, 0.87 at 640. Added to balanced (every 2nd crop,
# 134 faces), covered recall went from 0.76 to 0.94 at 256, 0.955 at 288 and 0.94 at 320. The pass
# costs about a fifth of a 640 px one. Its boxes face the same size-tier thresholds as any.
COARSE_SIDE = 288
# And a second, coarser one. Close-up set, balanced (benchmarks/hard_sets.py and the offline replay
# in docs/benchmarks.md): 0.947 covered with the 288 px pass alone, 0.966 with this one added at
# the same score floor (a blurred or unusual face filling the frame is ~100-160 px here, where
# CenterFace scores it best); 224 px gave 0.954, 384 px 0.951. On the 183 dev photos it found one
# more face at 32-64 px and moved the masked area from 2.17x to 2.20x. It costs ~a twentieth of a
# 640 px pass. In balanced only: in fast (close-ups 0.954 -> 0.966) one of its boxes won NMS over
# a better one and a dev face >= 64 px went under 80 % covered; thorough already covered 0.985 of
# the close-ups with its lower thresholds and was not measured with it (3x the time).
CLOSEUP_SIDE = 160
# Its boxes are kept from this score on. With the size tiers' thresholds alone it masked 2.56x the
# face area on the 183 dev photos with fast instead of 2.12x: small boxes at that scale are noise,
# and large ones cost area. At 0.3: 2.14x, every dev bucket as before; at 0.5 fast lost a dev face
# >= 64 px. Close-ups (balanced, every 2nd crop): 0.955 covered with no floor, 0.94 at 0.3.
COARSE_MIN_SCORE = 0.3

# One score threshold per detected face height (< 16, 16-32, 32-64, >= 64 px): small faces score
# low and a false mask on them costs little area; a large false box costs a lot.
STILL: dict[DetectPreset, DetectorSettings] = {
    # One pass with the longer side at 640 px: about a seventh of balanced's work. With support
    # across its two passes (a box >= 64 px under its threshold kept when the coarse pass sees it
    # too and the two scores together reach it): close-ups 0.954 -> 0.966, every dev bucket as
    # before, dev area 2.34x -> 2.40x, about 3 % more detection time (benchmarks/closeup_passes.py).
    # Support at the edge across both passes (as balanced's, below): close-ups 0.966 -> 0.973
    # (--seed 2: 0.968 both), every dev bucket and the area as before, ~1 % more time.
    DetectPreset.FAST: DetectorSettings(thresholds=(0.05, 0.06, 0.1, 0.2), max_side=640,
                                        large_face_side=0, coarse_sides=(COARSE_SIDE,),
                                        coarse_min_score=COARSE_MIN_SCORE, support_passes=2,
                                        edge_support_passes=2),
    # Up-scaled 1.5x for faces under 32 px (a 1024 px photo is one 1536 px tile), plus the 640 px
    # pass for faces too big for the net at that scale.
    # A box >= 64 px under its threshold is kept when three of its four passes see it and their
    # scores together reach the threshold (DetectorSettings.support_passes): close-up set 0.973 ->
    # 0.985 covered (blurred faces in an up-scaled crowd crop, scored 0.04-0.15 in every pass), dev
    # >= 64 px 241 -> 243 of 243, dev area 2.40x -> 2.56x. Lowering the >= 64 px threshold to 0.15
    # instead covered 0.977 at 2.50x; two passes 2.62x, four nothing gained
    # (benchmarks/closeup_passes.py).
    # A box at the image's edge from 48 px, from any pass, is kept when two passes hold it at IoU
    # >= 0.4 and reach its threshold together (DetectorSettings.edge_support_passes): close-ups
    # 0.985 -> 0.992 (a second sample of crops, hard_sets.py --seed 2: 0.964 -> 0.972), every dev
    # bucket as before, dev area 2.56x -> 2.63x, ~3 % more detection time. Three passes: 0.989.
    DetectPreset.BALANCED: DetectorSettings(thresholds=(0.06, 0.08, 0.1, 0.2), scales=(1.5,),
                                            coarse_sides=(COARSE_SIDE, CLOSEUP_SIDE), coarse_min_score=COARSE_MIN_SCORE,
                                            support_passes=3, edge_support_passes=2),
    # Adds the full-resolution pass and lowers the thresholds of large boxes. 32-64 px at 0.08
    # rather than 0.06 (issue 18): with ROTATED_MIN_SCORE at 0.25, dev area 3.20x -> 3.11x, every
    # face kept on the dev, rotated and close-up sets; 0.09 and 0.1 lose a close-up face
    # (benchmarks/thorough_replay.py).
    # Its 1.5x pass drops boxes of 256 px and more (DetectorSettings.upscaled_max_height): with
    # ROTATED_LARGE_MIN_SCORE, dev area 3.07x -> 2.99x in the replay, every face kept on the dev,
    # rotated and close-up sets; 192 px loses a dev face >= 64 px. Not in balanced: there the cap
    # loses a close-up face (benchmarks/thorough_replay.py).
    DetectPreset.THOROUGH: DetectorSettings(thresholds=(0.05, 0.05, 0.08, 0.1), scales=(1.0, 1.5),
                                            coarse_sides=(COARSE_SIDE,), coarse_min_score=COARSE_MIN_SCORE,
                                            upscaled_max_height=256.0),
}


# Quarter turns a preset also searches stills at (detect/rotate.py), for faces photographed with the
# camera on its side or upside down; each costs one more run of every pass. Video runs the sideways
# ones only with Config.roll. thorough's 180 degree view (issue 18): on the dev photos turned 180
# degrees it covered 0.77 of faces >= 32 px without it and as many as upright with it (stride 6),
# for ~1.3x its time (benchmarks/thorough_replay.py, hard_sets.py --rotations 0,90,180,270).
ROTATIONS: dict[DetectPreset, tuple[int, ...]] = {
    DetectPreset.FAST: (),
    DetectPreset.BALANCED: (),
    DetectPreset.THOROUGH: (*SIDEWAYS, UPSIDE_DOWN),
}
# Boxes seen only sideways are kept from this score on: at the preset's own thresholds (thorough:
# 0.05-0.1) the turned views added so many false boxes that thorough masked 6.3x the face area on
# the rotated set instead of 3.2x (benchmarks/hard_sets.py --sets rotated --stride 6). It was 0.15
# while it also held in the view in which a sideways photo stands upright (0.2 and 0.3 then lost
# sideways faces). Since that view keeps the preset's thresholds (rotate.standing_view), the floor
# only meets boxes in views where the faces lie sideways: at 0.25 thorough's dev area fell from
# 3.55x to 3.20x with every face kept on the dev, rotated (90/270) and close-up sets; 0.3 loses a
# close-up face, a per-size floor of 0.4 for >= 64 px a dev face (benchmarks/thorough_replay.py).
ROTATED_MIN_SCORE = 0.25
# A box of 64 px and more seen only sideways, in stills, needs this score, or the upright passes to
# see something over it (rotate.Rotated's large_min_score): thorough's dev area 3.11x -> 3.07x in
# the replay with every face kept (a flat floor of 0.4 for such boxes lost a tilted face >= 64 px
# that the upright passes saw at 0.35 and framed worse).
ROTATED_LARGE_MIN_SCORE = 0.4
# The view turned 180 degrees, unless the picture stands upright in it: (floor, large-box floor),
# both higher than sideways. At the sideways floors the view cost 3.06x dev area instead of 2.99x;
# at (0.4, 0.5) 2.99x, every dev bucket as before, and on all 183 dev photos turned 180 degrees
# 241 of 243 faces >= 64 px covered (0.6 for large boxes: 240; (0.5, 0.5) loses one more on every
# 6th photo; benchmarks/thorough_replay.py).
UPSIDE_DOWN_MIN_SCORES = (0.4, 0.5)
# Video (--roll) keeps 0.15: there the view that stands upright must first be found from sure faces
# over a few detector frames, and a clip with few faces, or a camera part-way through a roll, lives
# on boxes under 0.25 in the turned views. At 0.25, balanced lost faces on seed 9's rolling pair pan
# (covered >= 32 px 0.952 -> 0.935, longest unmasked run 8 -> 11 frames) and small faces on the
# pair pan held clockwise (all faces 0.958 -> 0.930) (benchmarks/roll_clips.py --floors 0.25).
ROLL_MIN_SCORE = 0.15


def rotations(config: Config, video: bool = False) -> tuple[int, ...]:
    """The quarter turns searched besides the upright frame: the preset's for stills; for video
    both sideways turns when the camera rolls (Config.roll), else none."""
    if video:
        return SIDEWAYS if config.roll else ()
    turns = ROTATIONS[config.detect]
    return tuple(sorted({*turns, *SIDEWAYS})) if config.roll else turns


# Faces rebuilt from dots score lower than in the photo, so a quantised picture is searched at this
# share of each size tier's threshold. Same 50 photos, sigma 1.5: covered 32-64 px 0.90 at the
# preset's thresholds, 0.91 at 0.75x, 0.96 at 0.5x (colour photos: 0.975), at 4.3x the annotated
# face area masked instead of 3.0x. A missed face outranks a false mask. With both, on the first
# 100 photos (--limit 100 --raw): covered 32-64 px 0.956 and >= 64 px 0.980 against the colour
# photos' 0.981 and 0.987; the detector on the raw dots covered 0.753 and 0.795.
QUANTISED_SCALE = 0.5


# Margins of boxes the detector is sure of: (score at least, factor on Config's margins, unless the
# box is at least this share of the frame's height). A sure box sits on the face, so full margins
# there only add area: at 0.6x balanced masks 2.15x the face area on WIDER dev instead of 2.63x
# with no face uncovered in any size bucket (0.5x loses one face >= 64 px). A face filling a third
# of the frame or more is past CenterFace's comfortable size, and its box is looser: on the
# close-up set, full margins there raised balanced's covered recall from 0.966 to 0.973 (two
# faces), for 2.20x -> 2.40x masked area on the dev photos (the portraits' faces). thorough has
# the same rule since issue 18's third round: every dev face, close-up and rendered-clip face kept
# as with full margins, dev area 3.82x -> 3.55x. Method and sweep in docs/benchmarks.md.
SURE_MARGINS: dict[DetectPreset, tuple[float, float, float] | None] = {
    DetectPreset.FAST: (0.3, 0.6, 0.35),
    DetectPreset.BALANCED: (0.3, 0.6, 0.35),
    DetectPreset.THOROUGH: (0.3, 0.6, 0.35),
}


def sure_margins(config: Config) -> tuple[float, float] | None:
    return SURE_MARGINS[config.detect]


def preset_settings(preset: DetectPreset | str, threshold: float | None = None) -> DetectorSettings:
    """The still settings of a named preset; a threshold given replaces every size tier's."""
    settings = STILL[DetectPreset(preset)]
    if threshold is not None:
        settings = replace(settings, thresholds=(threshold,) * len(settings.thresholds))
    return settings


def still_settings(config: Config, quantised: bool = False) -> DetectorSettings:
    """A still's settings; a quantised one (detect/dequantise.py) at QUANTISED_SCALE of each
    tier's threshold."""
    settings = preset_settings(config.detect, config.threshold)
    if quantised:
        settings = replace(settings, thresholds=tuple(t * QUANTISED_SCALE for t in settings.thresholds))
    return settings


# -- video -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoDetectSettings:
    """How the detector is run over a video: its passes, at what scale, and how often."""

    detector: DetectorSettings
    detect_every: int  # 1: every frame; k: every k-th frame, tracking carries masks in between
    scale: float = 1.0  # frames are scaled by this (one swscale pass) before the detector sees them
    camera_motion: bool = True  # carried masks follow the camera (motion.py); off: a still camera
    # How detections are linked and carried; its frame counts are set from Config's seconds.
    tracker: TrackerSettings = TrackerSettings()


# Per preset: (frame scale, large-face pass side, detector stride). The scale makes a 32 px face
# reach the network at >= 16 px whatever the resolution; the 384 px pass finds close-ups too large
# for the network at that scale. thorough keeps the still passes on every frame.
VIDEO: dict[DetectPreset, tuple[float, int, int]] = {
    DetectPreset.FAST: (0.5, 384, 5),
    DetectPreset.BALANCED: (0.5, 384, 3),
    DetectPreset.THOROUGH: (1.0, 640, 1),
}

# The still presets' coarse passes (COARSE_SIDE, CLOSEUP_SIDE) are left out of fast and balanced
# video: at the 0.5 frame scale their 384 px pass already sees a face filling a 720p frame at ~216 px, in the range
# where one pass found the most close-ups (288-384 px), and every extra pass costs video speed.
VIDEO_COARSE_SIDES: tuple[int, ...] = ()

# fast and balanced run the INT8 graph (detect/quantize.py; fp32 where the CPU would saturate
# it), which scores faces a little lower: hence thresholds under the still ones.
INT8_PRESETS = frozenset({DetectPreset.FAST, DetectPreset.BALANCED})
INT8_THRESHOLDS = (0.05, 0.06, 0.1, 0.15)

# A box touching the frame's edge is kept at this fraction of its tier's threshold: a face cut off
# by the frame shows only part of itself and scores lower.
EDGE_SCALE = 0.5


def video_settings(config: Config) -> VideoDetectSettings:
    """The video settings of the config's preset."""
    settings = still_settings(config)
    scale, large_face_side, every = VIDEO[config.detect]
    if config.detect is not DetectPreset.THOROUGH:
        # One pass at the video scale (not the still preset's up-scaling), so the frame scale
        # alone sets the cost. No support across passes, at the edge neither (video has its own
        # edge rule, EDGE_SCALE): in video the masked area is the problem, not recall of large
        # faces, and the weak boxes support needs are then not even decoded.
        settings = replace(settings, scales=(1.0,), max_side=0, large_face_side=large_face_side,
                           flip=False, coarse_sides=VIDEO_COARSE_SIDES, support_passes=0,
                           edge_support_passes=0)
    if config.detect in INT8_PRESETS:
        settings = replace(settings, int8=True)
        if config.threshold is None:  # a user's threshold stands as given, at the edge too
            settings = replace(settings, thresholds=INT8_THRESHOLDS, edge_scale=EDGE_SCALE)
    return VideoDetectSettings(settings, every, scale)


def tracker_settings(config: Config, rate: float | None, detect_every: int,
                     linking: TrackerSettings = TrackerSettings()) -> TrackerSettings:
    """`linking` with frame counts from the config's seconds; gaps and padding always span a
    detector stride, so a face first detected on one detector frame is covered since the
    previous one."""
    fps = rate if rate and rate > 0 else 30.0
    gap = max(int(round(config.track_gap_s * fps)), 2 * detect_every - 1)
    pad = max(config.track_pad_frames, detect_every)
    hold = max(int(round(config.track_hold_s * fps)), gap)
    return replace(linking, gap_frames=gap, pad_frames=pad, hold_frames=hold)


__all__ = ["STILL", "VIDEO", "ROTATIONS", "ROTATED_MIN_SCORE", "ROTATED_LARGE_MIN_SCORE", "UPSIDE_DOWN_MIN_SCORES", "ROLL_MIN_SCORE", "rotations", "QUANTISED_SCALE", "SURE_MARGINS", "sure_margins", "INT8_PRESETS", "INT8_THRESHOLDS", "EDGE_SCALE", "VideoDetectSettings",
           "preset_settings", "still_settings", "video_settings", "tracker_settings"]


# -- live streams ----------------------------------------------------------------------------------

# veil live: (frame scale, large-face pass side, detector stride), as the video presets. fast's
# video pass (half scale, the 384 px large-face pass, every 5th frame): offline it runs 720p at
# ~45 fps on this machine's 2 idle cores (docs/benchmarks.md, video presets) with covered recall
# 1.000, the headroom real time needs for decoding, network jitter and x264; balanced's stride 3
# leaves ~20 % and fell behind in trials. INT8 is off on this CPU (fp32). A delay line too short
# for the stride gets a smaller one (live/delay.py).
LIVE_VIDEO: tuple[float, int, int] = (0.5, 384, 5)
# Seconds after a frame's due time (arrival + --delay) that the pipeline has to finish it before
# the output clock fills its slot instead: covers one detector frame and network jitter, within
# the 150 ms p50 of added latency.
LIVE_BUDGET_S = 0.12
# A slot with no checked frame repeats the last checked one for at most this long, then curtains.
LIVE_REPEAT_S = 0.5
# While frames keep missing their slots, the detector's scale steps down through these factors of
# LIVE_VIDEO's (live/degrade.py): its cost is about proportional to the pixels, so each step cuts
# it by ~45 % and ~55 %. The last step sees 720p at 320x180 (faces >= 32 px at >= 8 px); smaller,
# CenterFace finds too little for the picture to be worth showing, and curtains are the answer.
LIVE_SCALE_STEPS: tuple[float, ...] = (1.0, 0.75, 0.5)


def live_settings(config: Config) -> VideoDetectSettings:
    """The detector settings of `veil live`: the config's preset's video pass at LIVE_VIDEO."""
    scale, large_face_side, every = LIVE_VIDEO
    settings = video_settings(config)
    detector = replace(settings.detector, large_face_side=large_face_side)
    return replace(settings, detector=detector, detect_every=every, scale=scale)
__all__ += ["LIVE_VIDEO", "LIVE_BUDGET_S", "LIVE_REPEAT_S", "LIVE_SCALE_STEPS", "live_settings"]
