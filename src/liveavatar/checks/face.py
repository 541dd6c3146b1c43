"""Face measurements for the checks, on top of ``media.faces`` (the detector/mesh adapter).

Faces are counted with the full-range detector (``media.faces.detect_faces``); the dense
mesh (478 points) runs on a crop around the main face, because FaceMesh's own short-range
detector misses faces that are small in the frame. mediapipe is imported only when called.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liveavatar.media import faces as M
from liveavatar.media.mouth import MouthState, assess_mouth

MIN_SCORE = 0.5
_EYE_L = (33, 160, 158, 133, 153, 144)  # corner, top, top, corner, bottom, bottom
_EYE_R = (362, 385, 387, 263, 373, 380)


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the image it was found in."""

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: np.ndarray | None = field(default=None, compare=False, repr=False)  # detector's [6, 2]

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True)
class FaceShape:
    """Measures from the dense mesh of the main face (ratios, so independent of image size)."""

    yaw: float  # nose offset from the cheek midpoint / face width: 0 frontal, +-0.5 full profile
    mouth_open: float  # inner-lip gap / mouth width (0 closed, ~0.1 talking, > 0.45 wide open)
    eyes_open: float  # mean eye aspect ratio (about 0.25-0.35 open, < 0.12 shut)
    face_width: float  # cheek to cheek, pixels
    mouth: MouthState | None = None  # the mouth as the preview engine sees it (media.mouth)


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """All faces with score >= MIN_SCORE, largest first."""
    h, w = rgb.shape[:2]
    faces = []
    for b in M.detect_faces(rgb, MIN_SCORE):
        x0, y0, x1, y1 = max(0.0, b.x0), max(0.0, b.y0), min(float(w), b.x1), min(float(h), b.y1)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            faces.append(Face(x0, y0, x1 - x0, y1 - y0, b.score, b.keypoints))
    return sorted(faces, key=lambda f: f.w * f.h, reverse=True)


def face_shape(rgb: np.ndarray, face: Face) -> FaceShape | None:
    """Mesh the face (the preview engine's crop-and-mesh); None when the mesh finds nothing."""
    if face.w < 4 or face.h < 4:
        return None
    found = M.mesh_in_box(rgb, M.FaceBox(face.x, face.y, face.x + face.w, face.y + face.h, face.score))
    if found is None:
        return None
    pts = found.astype(np.float64)

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(pts[a] - pts[b]))

    left, right = pts[M.CHEEK_LEFT, 0], pts[M.CHEEK_RIGHT, 0]
    width = max(abs(right - left), 1e-6)
    yaw = float((pts[M.NOSE_TIP, 0] - (left + right) / 2) / width)
    mouth_open = dist(M.INNER_TOP, M.INNER_BOTTOM) / max(dist(M.MOUTH_LEFT, M.MOUTH_RIGHT), 1e-6)

    def ear(idx: tuple[int, ...]) -> float:
        c0, t0, t1, c1, b1, b0 = idx
        return (dist(t0, b0) + dist(t1, b1)) / (2 * max(dist(c0, c1), 1e-6))

    eyes = (ear(_EYE_L) + ear(_EYE_R)) / 2
    return FaceShape(
        yaw=yaw,
        mouth_open=float(mouth_open),
        eyes_open=float(eyes),
        face_width=float(width),
        mouth=assess_mouth(rgb, found, face.keypoints),
    )
