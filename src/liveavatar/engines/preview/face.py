"""Find the face to animate and describe it: 478 dense landmarks at the working (output) size.

The detector and mesh are ``media.faces`` (shared with the checks); here the largest face's mesh is
mapped into the coordinates of the portrait as fitted to the plan's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveavatar.engines.base import Notify
from liveavatar.errors import UserError
from liveavatar.media.faces import (  # noqa: F401 - the landmark indices, re-exported for the engine
    CHEEK_LEFT,
    CHEEK_RIGHT,
    CHIN,
    EYE_A_LOWER,
    EYE_A_UPPER,
    EYE_B_LOWER,
    EYE_B_UPPER,
    FOREHEAD,
    INNER_BOTTOM,
    INNER_TOP,
    LOWER_INNER,
    LOWER_OUTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    SILHOUETTE,
    UPPER_INNER,
    UPPER_OUTER,
    FaceBox,
    detect_faces,
    mesh_in_box,
    mesh_landmarks,
)
from liveavatar.media.mouth import MouthState, assess_mouth

MIN_FACE_PX = 48
"""Smallest face (forehead-to-chin height, in output pixels) the preview engine animates."""


@dataclass(frozen=True)
class FaceModel:
    """The animated face, in the coordinates of the portrait fitted to the output size."""

    landmarks: np.ndarray  # float32 [478, 2] (x, y) pixels
    height: int
    width: int
    mouth: MouthState | None = None  # the portrait's own mouth (measured on the original image)

    @property
    def face_height(self) -> float:
        return float(np.linalg.norm(self.landmarks[CHIN] - self.landmarks[FOREHEAD]))

    @property
    def face_width(self) -> float:
        return float(np.linalg.norm(self.landmarks[CHEEK_RIGHT] - self.landmarks[CHEEK_LEFT]))

    @property
    def mouth_width(self) -> float:
        return float(np.linalg.norm(self.landmarks[MOUTH_RIGHT] - self.landmarks[MOUTH_LEFT]))

    @property
    def mouth_gap(self) -> float:
        """The portrait's own opening between the inner lips, in pixels."""
        return float(np.linalg.norm(self.landmarks[INNER_BOTTOM] - self.landmarks[INNER_TOP]))

    @property
    def center(self) -> np.ndarray:
        return self.landmarks[list(SILHOUETTE)].mean(axis=0)


def _position_words(box: FaceBox, width: int, height: int) -> str:
    cx, cy = (box.x0 + box.x1) / 2 / width, (box.y0 + box.y1) / 2 / height
    horiz = "left" if cx < 0.4 else "right" if cx > 0.6 else "centre"
    vert = "top" if cy < 0.35 else "bottom" if cy > 0.65 else "middle"
    return f"{vert}-{horiz}, centred at x={cx:.0%}, y={cy:.0%} of the portrait"


def _fit_mapping(h0: int, w0: int, height: int, width: int) -> tuple[float, float, float]:
    """(scale, left, top) of media.image.fit_to_size: fitted = original * scale - (left, top)."""
    scale = max(height / h0, width / w0)
    new_h, new_w = max(height, round(h0 * scale)), max(width, round(w0 * scale))
    return scale, (new_w - width) // 2, (new_h - height) // 2


def find_face(image: np.ndarray, height: int, width: int, notify: Notify) -> FaceModel:
    """Locate the face to animate in the original portrait and describe it at ``height x width``."""
    h0, w0 = image.shape[:2]
    boxes = detect_faces(image)
    points, keypoints = None, None
    if boxes:
        if len(boxes) > 1:
            notify(
                f"warning: the portrait shows {len(boxes)} faces; the preview animates the largest one "
                f"({_position_words(boxes[0], w0, h0)}); crop the portrait to one face to choose another"
            )
        points = mesh_in_box(image, boxes[0])
        keypoints = boxes[0].keypoints
    if points is None:
        points = mesh_landmarks(image)
    if points is None:
        raise UserError(
            "--image",
            "no face found in the portrait",
            "use a well-lit, frontal portrait of one person with the whole face visible",
        )
    scale, left, top = _fit_mapping(h0, w0, height, width)
    fitted = (points * np.float32(scale) - np.array([left, top], dtype=np.float32)).astype(np.float32)
    face = FaceModel(fitted, height, width, assess_mouth(image, points, keypoints))
    if face.face_height < MIN_FACE_PX:
        from liveavatar.sizing import output_size

        # a larger --size helps only when the output is smaller than the portrait (it is never enlarged)
        can_grow = output_size(h0, w0, 1 << 40) != (height, width)
        raise UserError(
            "--image",
            f"the face is only {face.face_height:.0f} pixels tall at the output size {width}x{height} "
            f"(the preview needs at least {MIN_FACE_PX})",
            "crop the portrait closer to the face or choose a larger --size"
            if can_grow
            else f"use a portrait in which the face is at least {MIN_FACE_PX} pixels tall (the video is never larger than the portrait)",
        )
    core = fitted[[33, 263, MOUTH_LEFT, MOUTH_RIGHT, INNER_BOTTOM, CHIN]]  # eyes, mouth and chin must stay in frame
    if (core[:, 0] < 0).any() or (core[:, 0] > width).any() or (core[:, 1] < 0).any() or (core[:, 1] > height).any():
        raise UserError(
            "--image",
            f"the face is cut off when the portrait is cropped to {width}x{height}",
            "centre the face in the portrait with some room around it, or choose a --size with the portrait's aspect ratio",
        )
    return face
