"""Reading the portrait and fitting it to the planned output size."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from liveavatar.errors import UserError
from liveavatar.media import require_input_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
# Larger than any camera photo (a 108 MP phone shot fits); beyond it a file is more likely a
# decompression bomb than a portrait, and decoding it would take gigabytes.
MAX_PIXELS = 120_000_000
_FIX = "give a JPG or PNG portrait"


def read_image(path: Path, flag: str = "--image") -> np.ndarray:
    """Read a portrait as uint8 RGB ``[H, W, 3]`` with its EXIF orientation applied.

    16-bit and 32-bit grayscale (PNG ``I;16``/``I``) are scaled to 8 bits, not clipped to white.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    require_input_file(path, flag, "an image", "give the path of a JPG or PNG portrait")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit speaks instead
            img = Image.open(path)
        with img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise UserError(
                    flag,
                    f"{path} is {w}x{h} pixels ({w * h / 1e6:.0f} MP), above the {MAX_PIXELS // 1_000_000} MP limit",
                    "downscale it (a portrait needs no more than a few megapixels)",
                )
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb8(img)
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(
            flag, f"{path} is too large to decode safely (over {MAX_PIXELS // 1_000_000} MP)", "downscale it"
        ) from None
    except UnidentifiedImageError:
        raise UserError(flag, f"{path} is not an image this tool can read", _FIX) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UserError(flag, f"{path} could not be decoded ({exc})", "re-export it as a JPG or PNG portrait") from None
    if rgb.shape[0] < 64 or rgb.shape[1] < 64:
        raise UserError(
            flag,
            f"{path} is only {rgb.shape[1]}x{rgb.shape[0]} pixels",
            "give a portrait of at least 64x64 (512x512 or more is recommended)",
        )
    return np.ascontiguousarray(rgb)


def _to_rgb8(img) -> np.ndarray:
    """uint8 RGB; high-bit-depth grayscale is rescaled (PIL's convert would clip it to 255)."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(img).astype(np.float64)
        # 16-bit PNGs arrive as I;16 or as I with 0..65535; a true 32-bit range is rare
        top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if img.mode == "F":
            top = max(float(values.max(initial=0)), 1.0) if values.max(initial=0) > 1 else 1.0
        gray = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def fit_to_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale the image to cover ``height x width`` and centre-crop it (no black bars).

    Upstream resizes the shorter side to ``min(H, W)`` and centre-crops, zero-padding the other
    side when the aspect ratios differ; covering keeps the frame full instead.
    """
    import cv2

    h0, w0 = image.shape[:2]
    scale = max(height / h0, width / w0)
    new_h, new_w = max(height, round(h0 * scale)), max(width, round(w0 * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])
