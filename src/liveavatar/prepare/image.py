"""Portrait fixes: a face-centred crop at the wanted aspect, enlarged when small."""

from __future__ import annotations

import numpy as np

from liveavatar.checks.face import Face

FRAME_FACE = 0.30  # a tight crop makes the face this share of the crop's short side
SMALL_FACE = 0.12  # ... and is only made when the face is smaller than this share


def face_crop_box(shape: tuple[int, ...], face: Face | None, aspect: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the largest box of ``aspect`` (width/height) in the image, centred on
    the face (clamped to the borders), tightened when the face would be small in it."""
    h, w = shape[:2]
    bw, bh = (w, w / aspect) if w / aspect <= h else (h * aspect, h)
    if face is not None:
        side = min(face.w, face.h)
        if side < SMALL_FACE * min(bw, bh):
            shrink = side / FRAME_FACE / min(bw, bh)
            bw, bh = bw * shrink, bh * shrink
        cx, cy = face.centre
        cy -= 0.1 * bh  # leave a little more room below the chin than above the head
    else:
        cx, cy = w / 2, h / 2
    bw, bh = max(8.0, min(bw, w)), max(8.0, min(bh, h))
    x0 = int(round(min(max(cx - bw / 2, 0), w - bw)))
    y0 = int(round(min(max(cy - bh / 2, 0), h - bh)))
    return x0, y0, x0 + int(round(bw)), y0 + int(round(bh))


def crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])
