"""The portrait's own mouth: how open it is, what shows inside (teeth, dark interior), and whether
the mesh's mouth is believable for this image at all.

Shared by the input checks (which name a portrait the preview engine cannot animate well) and the
preview engine (which chooses its mouth model from it), so the two always agree. Works on any image
with its 478 mesh landmarks in the same pixel coordinates; every measure is a ratio or a colour
difference, so it does not depend on the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveavatar.media import faces as M

# Thresholds; docs/preview.md ("The portrait's mouth") gives the corpus figures behind each.
CLOSED_GAP = 0.06  # inner-lip gap / mouth width below which the mouth counts as closed
WIDE_GAP = 0.35  # above this the portrait's mouth is wide open (a shout, a yawn)
TEETH_SHARE = 0.15  # share of the interior that is teeth-like for "shows teeth"
MIN_LIP_REDNESS = 2.5  # lips' Lab a* minus the skin/hair around them; hair over the mouth is ~0
MAX_AXIS_OFFSET = 0.12  # mouth centre off the nose line, / face width
MAX_AXIS_ANGLE = 15.0  # degrees between the mouth line and the eye line
MAX_KEYPOINT_MISS = 0.12  # detector's mouth keypoint vs mesh mouth centre, / face height


@dataclass(frozen=True)
class MouthState:
    """What the portrait's mouth is like, and why (if at all) its landmarks are not to be trusted."""

    gap: float  # inner-lip gap / mouth width
    teeth: float  # share of the interior that looks like teeth (0 when closed)
    dark: float  # share of the interior darker than the lips (an open cavity)
    redness: float  # lips' a* minus their surroundings'
    axis_offset: float
    axis_angle: float
    keypoint_miss: float | None
    problems: tuple[str, ...]  # empty when the mouth is plausible

    @property
    def kind(self) -> str:
        """closed | teeth (a smile or part showing teeth) | parted (open a little, no teeth) | open (wide)."""
        if self.gap >= WIDE_GAP:
            return "open"
        if self.gap < CLOSED_GAP:
            return "closed"
        return "teeth" if self.teeth >= TEETH_SHARE else "parted"

    @property
    def plausible(self) -> bool:
        return not self.problems


def _poly_mask(shape: tuple[int, int], pts: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round((pts - box) * 4).astype(np.int32)], 255, cv2.LINE_8, shift=2)
    return mask > 0


def teeth_like(lab_l: np.ndarray, saturation: np.ndarray, lip_l: float) -> np.ndarray:
    """Pixels that look like teeth: brighter than the lips (Lab L, 0..255) and unsaturated (HSV S, 0..1)."""
    return (lab_l > lip_l + 12) & (saturation < 0.4)


def inner_polygon(lm: np.ndarray) -> np.ndarray:
    return lm[list(M.UPPER_INNER + M.LOWER_INNER[::-1][1:-1])]


def assess_mouth(image: np.ndarray, lm: np.ndarray, keypoints: np.ndarray | None = None) -> MouthState:
    """Measure the mouth of the face whose landmarks ``lm`` ([478, 2] pixels) sit on ``image`` (RGB)."""
    import cv2

    lm = lm.astype(np.float64)
    mw = max(float(np.linalg.norm(lm[M.MOUTH_RIGHT] - lm[M.MOUTH_LEFT])), 1e-6)
    fw = max(float(np.linalg.norm(lm[M.CHEEK_RIGHT] - lm[M.CHEEK_LEFT])), 1e-6)
    fh = max(float(np.linalg.norm(lm[M.CHIN] - lm[M.FOREHEAD])), 1e-6)
    pairs = ((82, 87), (13, 14), (312, 317))
    gap = float(np.mean([np.linalg.norm(lm[b] - lm[a]) for a, b in pairs])) / mw

    # A box around the mouth with a margin of half a mouth width, in image pixels.
    h, w = image.shape[:2]
    x0, y0 = np.floor(lm[list(M.UPPER_OUTER)].min(axis=0) - 0.5 * mw).astype(int)
    x1, y1 = np.ceil(lm[list(M.LOWER_OUTER)].max(axis=0) + 0.5 * mw).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    teeth = dark = redness = 0.0
    if x1 - x0 >= 4 and y1 - y0 >= 4:
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
        hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV).astype(np.float32)
        shape, org = crop.shape[:2], (x0, y0)
        interior = _poly_mask(shape, inner_polygon(lm), org)
        outer = _poly_mask(shape, lm[list(M.UPPER_OUTER + M.LOWER_OUTER[::-1][1:-1])], org)
        lips = outer & ~interior
        around = ~outer & ~cv2.dilate(outer.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # a ring outside
        if lips.sum() >= 8 and around.sum() >= 8:
            redness = float(np.median(lab[..., 1][lips]) - np.median(lab[..., 1][around]))
        if interior.sum() >= 6 and lips.sum() >= 8:
            lip_l = float(np.median(lab[..., 0][lips]))
            inside_l, inside_s = lab[..., 0][interior], hsv[..., 1][interior] / 255.0
            teeth = float(teeth_like(inside_l, inside_s, lip_l).mean())
            dark = float((inside_l < 0.7 * lip_l).mean())

    axis = lm[M.CHIN] - lm[M.NOSE_BRIDGE]  # the face's midline (the nose tip leaves it when the head turns)
    axis /= np.linalg.norm(axis) + 1e-9
    mc = (lm[M.INNER_TOP] + lm[M.INNER_BOTTOM]) / 2
    rel = mc - lm[M.NOSE_BRIDGE]
    offset = float(abs(rel[0] * axis[1] - rel[1] * axis[0])) / fw
    eyes = lm[263] - lm[33]
    mouth = lm[M.MOUTH_RIGHT] - lm[M.MOUTH_LEFT]
    angle = float(np.degrees(abs(np.arctan2(eyes[0] * mouth[1] - eyes[1] * mouth[0], eyes @ mouth))))
    miss = None if keypoints is None else float(np.linalg.norm(keypoints[M.KP_MOUTH] - mc)) / fh

    problems = []
    if redness < MIN_LIP_REDNESS:
        problems.append(
            f"no lips where the face mesh puts the mouth (lip colour contrast {redness:.1f}; facial hair or a stylised face?)"
        )
    if offset > MAX_AXIS_OFFSET or angle > MAX_AXIS_ANGLE:
        problems.append(f"the mouth is off the face's axis ({offset:.2f} of the face width, {angle:.0f} degrees)")
    if miss is not None and miss > MAX_KEYPOINT_MISS:
        problems.append(
            f"the face detector and the face mesh disagree on where the mouth is ({miss:.2f} of the face height)"
        )
    return MouthState(gap, teeth, dark, redness, offset, angle, miss, tuple(problems))
