"""Hard portraits for the preview engine, made at test time (nothing copied into the project).

Variants of scikit-image's astronaut (public domain): her own toothy smile, a wide-open mouth, a
moustache and beard that leave the lips visible, a moustache that hides the mouth, and a
cartoon-like rendering; plus the upstream example portraits when ``../shared`` sits beside the
checkout. Each variant is built from the astronaut's own landmarks (found once).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

UPSTREAM = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "upstream-examples"
UPSTREAM_PORTRAITS = ("man.png", "kitchen_grandmother.jpg", "dwarven_blacksmith.jpg", "fashion_blogger.jpg")


@lru_cache(maxsize=1)
def _astronaut() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    from liveavatar.media.faces import detect_faces, mesh_in_box

    image = data.astronaut()
    return image, mesh_in_box(image, detect_faces(image)[0])


def smile() -> np.ndarray:
    """The astronaut as she is: a smile with the upper teeth showing."""
    return _astronaut()[0].copy()


def open_mouth(drop: float = 0.45) -> np.ndarray:
    """The jaw dropped by ``drop`` mouth widths: a dark mouth with the upper teeth under the lip."""
    import cv2

    image, lm = _astronaut()
    mw = float(np.linalg.norm(lm[291] - lm[61]))
    top = (lm[13] + lm[78] / 2 + lm[308] / 2) / 2  # where the lips part
    fw = float(np.linalg.norm(lm[454] - lm[234]))
    d = drop * mw
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    side = np.exp(-(((xx - top[0]) / (0.45 * fw)) ** 2))
    below = np.clip((yy - top[1]) / (0.15 * mw), 0, 1)  # only under the lip line moves
    chin = lm[152][1]
    fade = np.clip(1 - (yy - chin) / (0.6 * fw), 0, 1)  # the neck stays
    shift = d * side * below * np.where(yy > chin, fade, 1.0)
    out = cv2.remap(image, xx, yy - shift.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # the opened gap: an ellipse between the lip line and the lowered lower lip
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(top[0]), int(top[1] + d / 2)), (int(0.42 * mw), int(d / 2)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255
    t = np.clip((yy - top[1]) / max(d, 1.0), 0, 1)[..., None]
    cavity = np.array([50, 18, 22], np.float32) * (1 - t) + np.array([140, 60, 70], np.float32) * t  # dark to tongue
    teeth = ((yy - top[1]) < 0.12 * mw)[..., None] * (np.abs(xx - top[0]) < 0.3 * mw)[..., None]
    cavity = np.where(teeth, np.array([235, 228, 215], np.float32), cavity)
    return (out * (1 - mask) + cavity * mask).astype(np.uint8)


def _hair(shape: tuple[int, int], colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """Hair-like texture: many short dark and light strokes over a base colour."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = shape
    tex = np.zeros((h, w, 3), np.float32) + np.array(colour, np.float32)
    for _ in range(h * w // 40):
        x, y = rng.integers(0, w), rng.integers(0, h)
        ang = np.pi / 2 + rng.normal(0, 0.35)
        ln = rng.uniform(4, 10)
        c = tuple(float(v) for v in np.array(colour) * rng.uniform(0.5, 1.5))
        cv2.line(tex, (int(x), int(y)), (int(x + ln * np.cos(ang)), int(y + ln * np.sin(ang))), c, 1, cv2.LINE_AA)
    return np.clip(tex, 0, 255)


def beard(cover_mouth: bool = False) -> np.ndarray:
    """A moustache and chin beard; with ``cover_mouth`` the moustache hangs over the whole mouth."""
    import cv2

    image, lm = _astronaut()
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    jaw = [58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288]
    under_lip = [291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61] if not cover_mouth else [291, 61]
    beard_poly = np.array([lm[i] for i in under_lip] + [lm[i] + (0, 6) for i in jaw], np.int32)
    cv2.fillPoly(mask, [beard_poly], 255)
    nose_base = [98, 97, 2, 326, 327]
    lip = (
        [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
        if not cover_mouth
        else [291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61]
    )
    stache = np.array([lm[i] + (0, 2) for i in nose_base] + [lm[i] for i in lip], np.int32)
    cv2.fillPoly(mask, [cv2.convexHull(stache)], 255)
    m = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255
    tex = _hair((h, w), (92, 64, 40), seed=3)
    return (image * (1 - m) + tex * m).astype(np.uint8)


def cartoon() -> np.ndarray:
    """A flat-colour, ink-outlined rendering of the astronaut (a stylised face)."""
    import cv2

    image = _astronaut()[0]
    smooth = image
    for _ in range(4):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    flat = np.minimum((smooth.astype(np.int32) // 40) * 40 + 20, 255)
    edges = cv2.adaptiveThreshold(
        cv2.medianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 7),
        255,
        cv2.ADAPTIVE_THRESH_MEAN_C,
        cv2.THRESH_BINARY,
        9,
        4,
    )
    return (flat * (edges[..., None] > 0)).astype(np.uint8)


GENERATED = {
    "smile": smile,
    "open_mouth": open_mouth,
    "beard": beard,
    "beard_over_mouth": lambda: beard(cover_mouth=True),
    "cartoon": cartoon,
}


def upstream(name: str) -> np.ndarray | None:
    """An upstream example portrait (RGB), or None when ../shared is not beside the checkout."""
    from PIL import Image

    path = UPSTREAM / name
    if not path.exists():
        return None
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


def corpus(include_upstream: bool = True) -> dict[str, np.ndarray]:
    out = {name: make() for name, make in GENERATED.items()}
    if include_upstream:
        for name in UPSTREAM_PORTRAITS:
            img = upstream(name)
            if img is not None:
                out[name.split(".")[0]] = img
    return out
