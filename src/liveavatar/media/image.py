"""Reading the portrait and fitting it to the planned output size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveavatar.errors import UserError
from liveavatar.media import require_input_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def read_image(path: Path, flag: str = "--image") -> np.ndarray:
    """Read a portrait as uint8 RGB ``[H, W, 3]`` with its EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    require_input_file(path, flag, "an image", "give the path of a JPG or PNG portrait")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            rgb = np.asarray(img.convert("RGB"))
    except UnidentifiedImageError:
        raise UserError(flag, f"{path} is not an image this tool can read", "give a JPG or PNG portrait") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(flag, f"{path} could not be decoded ({exc})", "re-export it as a JPG or PNG portrait") from None
    if rgb.shape[0] < 64 or rgb.shape[1] < 64:
        raise UserError(flag, f"{path} is only {rgb.shape[1]}x{rgb.shape[0]} pixels", "give a portrait of at least 64x64 (512x512 or more is recommended)")
    return np.ascontiguousarray(rgb)


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
