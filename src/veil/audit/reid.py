"""Re-identification check: can a face recogniser still match the output's face to the original?

For every face of the original, dlib's 5-point shape predictor aligns it and dlib's ResNet
(`dlib_face_recognition_resnet_model_v1`) embeds the aligned 150x150 chip; the same chip is then
cut from the output and embedded. The original's alignment is reused on purpose: it is the best
alignment an attacker could hope for, so the check errs towards reporting a match.

Which faces dlib can match at all ("dlib-matchable"): measured on the WIDER dev photos, an
all-black chip already lies within 0.6 of many small or blurry faces, so for those a distance under
0.6 says nothing about identity (a solid black box would "match" them). A face is matchable only
when its embedding is at least SAME_PERSON_DISTANCE away from every blank chip (black, mid grey,
white, a skin tone and two fixed random-noise chips; the "null" chips any mask might produce):
then a distance under 0.6 means real information about the face survived.

The aligned chip also shows some surroundings (hair, collar, background) that no face mask
covers, and those pull the distance down a little for any mask. So a matchable face counts as
matched only when its distance is under 0.6 *and* at least NULL_MARGIN below the distance an
ideal mask would give: the same chip with the face's region filled black, and filled with noise.
(On a 320x180 clip, a solidly masked 26x35 face measured 0.599 against 0.600 for the ideal mask.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .models import dlib_module, face_recogniser, shape_predictor

# dlib's published decision threshold: two embeddings closer than 0.6 are the same person
# (99.38 % on LFW at this threshold).
SAME_PERSON_DISTANCE = 0.6
# Faces smaller than this carry too little for dlib's 150x150 aligned chip; they are still
# masked and pixel-checked, but no embedding is computed for them.
MIN_FACE_PX = 20
# CenterFace boxes start higher on the forehead than the boxes dlib's shape predictor was
# trained on (measured on the WIDER dev photos: ~0.15 of the height); trim that part.
VEIL_BOX_TOP_TRIM = 0.12
NULL_MARGIN = 0.05
CHIP_PX = 150  # dlib's aligned chip size
CHIP_PADDING = 0.25  # dlib's default padding around the landmarks
_FLAT_BLANKS = ((0, 0, 0), (128, 128, 128), (255, 255, 255), (180, 140, 120))
_NOISE_BLANK_SEEDS = (1, 2)


@dataclass(frozen=True)
class Matches:
    """Per face: distance original-vs-output (NaN when not matchable, so not measured), distance
    original-vs-nearest blank chip, and distance original-vs-ideally-masked chip (NaN unless the
    output's distance was under 0.6)."""

    distances: np.ndarray
    blank_distances: np.ndarray
    ideal_distances: np.ndarray

    @property
    def matchable(self) -> np.ndarray:
        """Faces dlib can tell apart from an empty chip (see the module docstring)."""
        return self.blank_distances >= SAME_PERSON_DISTANCE

    @property
    def matched(self) -> np.ndarray:
        distances = np.nan_to_num(self.distances, nan=np.inf)
        ideal = np.nan_to_num(self.ideal_distances, nan=-np.inf)
        return self.matchable & (distances < SAME_PERSON_DISTANCE) & (distances < ideal - NULL_MARGIN)


def alignment_box(box: np.ndarray, from_veil: bool) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (float(v) for v in box)
    if from_veil:
        y0 += VEIL_BOX_TOP_TRIM * (y1 - y0)
    return int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))


def align(pixels: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[object]:
    """5-point landmarks for each xyxy box in the original."""
    dlib = dlib_module()
    predictor = shape_predictor()
    image = np.ascontiguousarray(pixels)
    return [predictor(image, dlib.rectangle(x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)))
            for x0, y0, x1, y1 in boxes]


def chips(pixels: np.ndarray, shapes: list[object]) -> list[np.ndarray]:
    dlib = dlib_module()
    image = np.ascontiguousarray(pixels)
    return [np.ascontiguousarray(dlib.get_face_chip(image, s, size=CHIP_PX, padding=CHIP_PADDING))
            for s in shapes]


def embed(images: list[np.ndarray]) -> np.ndarray:
    """(N, 128) embeddings of aligned 150x150 chips."""
    if not images:
        return np.zeros((0, 128), np.float64)
    found = face_recogniser().compute_face_descriptor(images)
    return np.asarray([np.asarray(v) for v in found], np.float64)


@lru_cache(maxsize=1)
def _blank_embeddings() -> np.ndarray:
    """Embeddings of chips that carry no face: flat colours and random noise (computed once)."""
    blanks = [np.full((CHIP_PX, CHIP_PX, 3), colour, np.uint8) for colour in _FLAT_BLANKS]
    blanks += [np.random.default_rng(seed).integers(0, 256, (CHIP_PX, CHIP_PX, 3), dtype=np.uint8)
               for seed in _NOISE_BLANK_SEEDS]
    return embed(blanks)


def _ideally_masked(original: np.ndarray, region: tuple[int, int, int, int],
                    fill: str) -> np.ndarray:
    x0, y0, x1, y1 = region
    out = original.copy()
    if fill == "noise":
        rng = np.random.default_rng(0)
        out[y0:y1, x0:x1] = rng.integers(0, 256, out[y0:y1, x0:x1].shape, dtype=np.uint8)
    else:
        out[y0:y1, x0:x1] = 0
    return out


def match_faces(original: np.ndarray, output: np.ndarray,
                boxes: list[tuple[int, int, int, int]],
                regions: list[tuple[int, int, int, int]]) -> Matches:
    """Embedding distances for each original face: xyxy alignment boxes and the xyxy regions an
    ideal mask would fill (see Matches)."""
    if not boxes:
        return Matches(np.zeros(0), np.zeros(0), np.zeros(0))
    shapes = align(original, boxes)
    e_before = embed(chips(original, shapes))
    blanks = _blank_embeddings()
    to_blank = np.linalg.norm(e_before[:, None, :] - blanks[None, :, :], axis=2).min(axis=1)
    # Only a matchable face can be matched: skip embedding the output for the others (speed).
    distances = np.full(len(shapes), np.nan)
    check = np.flatnonzero(to_blank >= SAME_PERSON_DISTANCE)
    if len(check):
        e_after = embed(chips(output, [shapes[i] for i in check]))
        distances[check] = np.linalg.norm(e_before[check] - e_after, axis=1)
    # Only a face under the threshold needs the ideal-mask comparison (most never do).
    ideal = np.full(len(shapes), np.nan)
    for i in np.flatnonzero(np.nan_to_num(distances, nan=np.inf) < SAME_PERSON_DISTANCE):
        nulls = [chips(_ideally_masked(original, regions[i], fill), [shapes[i]])[0]
                 for fill in ("black", "noise")]
        ideal[i] = np.linalg.norm(embed(nulls) - e_before[i], axis=1).min()
    return Matches(distances, to_blank, ideal)
