"""The one face detector / dense-mesh adapter (MediaPipe), used by the checks and the preview engine.

Faces are counted with MediaPipe's full-range detector (FaceMesh's own short-range detector misses
small and side-by-side faces); the 478-point mesh then runs on a crop around the chosen face and its
landmarks are mapped back into the image. mediapipe is imported only when a function here runs.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

# MediaPipe FaceMesh indices (image left / image right as seen in the picture).
NOSE_TIP = 1
NOSE_BRIDGE = 168
FOREHEAD, CHIN = 10, 152
CHEEK_LEFT, CHEEK_RIGHT = 234, 454
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
INNER_TOP, INNER_BOTTOM = 13, 14
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
SILHOUETTE = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
# Eyelids, ordered from the inner to the outer corner (image-left eye = subject's right eye).
EYE_A_UPPER = (133, 173, 157, 158, 159, 160, 161, 246, 33)
EYE_A_LOWER = (133, 155, 154, 153, 145, 144, 163, 7, 33)
EYE_B_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
EYE_B_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
# The detector's six keypoints, in its order.
KP_EYE_A, KP_EYE_B, KP_NOSE, KP_MOUTH, KP_EAR_A, KP_EAR_B = range(6)


@dataclass(frozen=True)
class FaceBox:
    """A detected face in pixels, with the detector's six keypoints (eyes, nose, mouth, ears)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    keypoints: np.ndarray | None = field(default=None, compare=False)  # [6, 2] pixels

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
    with (
        mediapipe_quietly() as mp,
        mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score) as det,
    ):
        result = det.process(np.ascontiguousarray(image))
    boxes = []
    for d in result.detections or []:
        b = d.location_data.relative_bounding_box
        kps = np.array([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints], np.float32)
        boxes.append(
            FaceBox(
                b.xmin * w,
                b.ymin * h,
                (b.xmin + b.width) * w,
                (b.ymin + b.height) * h,
                float(d.score[0]),
                kps if len(kps) == 6 else None,
            )
        )
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def mesh_landmarks(image: np.ndarray) -> np.ndarray | None:
    """478 landmarks (x, y) in pixels of the largest face FaceMesh finds in ``image``, or None."""
    h, w = image.shape[:2]
    with (
        mediapipe_quietly() as mp,
        mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh,
    ):
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
