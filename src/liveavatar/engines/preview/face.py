"""Find the face to animate and describe it: 478 dense landmarks at the working (output) size.

Faces are counted with MediaPipe's full-range detector (FaceMesh's own short-range detector misses
small and side-by-side faces); the mesh then runs on a crop around the largest face, and its
landmarks are mapped into the coordinates of the portrait as fitted to the plan's size.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from liveavatar.engines.base import Notify
from liveavatar.errors import UserError

MIN_FACE_PX = 48
"""Smallest face (forehead-to-chin height, in output pixels) the preview engine animates."""

# MediaPipe FaceMesh indices used by the engine.
FOREHEAD, CHIN = 10, 152
CHEEK_LEFT, CHEEK_RIGHT = 234, 454  # image left / image right silhouette points
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
INNER_TOP, INNER_BOTTOM = 13, 14
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
SILHOUETTE = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# Eyelids, ordered from the inner to the outer corner (image-left eye = subject's right eye).
EYE_A_UPPER = (133, 173, 157, 158, 159, 160, 161, 246, 33)
EYE_A_LOWER = (133, 155, 154, 153, 145, 144, 163, 7, 33)
EYE_B_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_B_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)


@dataclass(frozen=True)
class FaceModel:
    """The animated face, in the coordinates of the portrait fitted to the output size."""

    landmarks: np.ndarray  # float32 [478, 2] (x, y) pixels
    height: int
    width: int

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


@dataclass(frozen=True)
class FaceBox:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


@contextmanager
def mediapipe_quietly():
    """Import mediapipe with its native logging (glog/absl/TFLite info lines on fd 2) held back.

    Its graphs print start-up chatter straight to the process's stderr, which would bury our own
    one-line messages; Python exceptions still come through.
    """
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*GetPrototype.*")
            import mediapipe as mp

            yield mp
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def detect_faces(image: np.ndarray, min_score: float = 0.5) -> list[FaceBox]:
    """Face boxes in pixels, largest first (MediaPipe full-range detector)."""
    h, w = image.shape[:2]
    with mediapipe_quietly() as mp, mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score) as det:
        result = det.process(np.ascontiguousarray(image))
    boxes = []
    for d in result.detections or []:
        b = d.location_data.relative_bounding_box
        boxes.append(FaceBox(b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h, float(d.score[0])))
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def mesh_landmarks(image: np.ndarray) -> np.ndarray | None:
    """478 landmarks (x, y) in pixels of the largest face FaceMesh finds in ``image``, or None."""
    h, w = image.shape[:2]
    with mediapipe_quietly() as mp, mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        return None
    pts = result.multi_face_landmarks[0].landmark
    return np.array([[p.x * w, p.y * h] for p in pts], dtype=np.float32)


def mesh_in_box(image: np.ndarray, box: FaceBox) -> np.ndarray | None:
    """Run FaceMesh on a square crop around ``box`` (the face at half the crop) and map back."""
    import cv2

    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    side = 2.2 * max(box.x1 - box.x0, box.y1 - box.y0)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    crop = src[y0 + pad : y0 + pad + s, x0 + pad : x0 + pad + s]
    scale = 1.0
    if s < 256:  # the landmark model wants some resolution to work with
        scale = 256 / s
        crop = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
    pts = mesh_landmarks(crop)
    if pts is None:
        return None
    return pts / scale + np.array([x0, y0], dtype=np.float32)


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
    points = None
    if boxes:
        if len(boxes) > 1:
            notify(
                f"warning: the portrait shows {len(boxes)} faces; the preview animates the largest one "
                f"({_position_words(boxes[0], w0, h0)}); crop the portrait to one face to choose another"
            )
        points = mesh_in_box(image, boxes[0])
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
    face = FaceModel(fitted, height, width)
    if face.face_height < MIN_FACE_PX:
        raise UserError(
            "--image",
            f"the face is only {face.face_height:.0f} pixels tall at the output size {width}x{height} "
            f"(the preview needs at least {MIN_FACE_PX})",
            "crop the portrait closer to the face or choose a larger --size",
        )
    core = fitted[[33, 263, MOUTH_LEFT, MOUTH_RIGHT, INNER_BOTTOM, CHIN]]  # eyes, mouth and chin must stay in frame
    if (core[:, 0] < 0).any() or (core[:, 0] > width).any() or (core[:, 1] < 0).any() or (core[:, 1] > height).any():
        raise UserError(
            "--image",
            f"the face is cut off when the portrait is cropped to {width}x{height}",
            "centre the face in the portrait with some room around it, or choose a --size with the portrait's aspect ratio",
        )
    return face
