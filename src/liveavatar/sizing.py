"""Timing and size rules shared by every engine (upstream's, made explicit).

Output size: upstream derives H x W from the portrait's aspect ratio and the *area* of the
``--size`` string, in multiples of 64, never scaling the portrait up. Clip count: upstream maps the
audio length to clips through wav2vec2's 50 Hz frame count, resampled to 30 Hz, with one clip
more than fits (the last clip runs past the audio and is trimmed away on output).
"""

from __future__ import annotations

import math

from liveavatar.errors import UserError

FPS = 25
SIZE_DIVISOR = 64
AUDIO_SAMPLE_RATE = 16_000
DEFAULT_SIZE = "704*384"  # the guide's 14B size ("W*H"): --size when nothing else sets it


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"W*H"`` (upstream's notation; ``x`` is accepted too) into ``(width, height)``."""
    cleaned = text.strip().lower().replace("x", "*")
    parts = cleaned.split("*")
    fix = f'give it as "W*H" with two positive whole numbers, e.g. --size "{DEFAULT_SIZE}"'
    if len(parts) != 2:
        raise UserError("--size", f'"{text}" is not a size', fix)
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UserError("--size", f'"{text}" is not a size', fix) from None
    if width <= 0 or height <= 0:
        raise UserError("--size", f'"{text}" has a zero or negative side', fix)
    if width * height < SIZE_DIVISOR * SIZE_DIVISOR:
        raise UserError("--size", f'"{text}" is smaller than one {SIZE_DIVISOR}x{SIZE_DIVISOR} tile', fix)
    return width, height


def output_size(image_height: int, image_width: int, area: int) -> tuple[int, int]:
    """Output ``(height, width)`` for a portrait of the given size and a target pixel area.

    Same result as upstream's ``get_size_less_than_area`` with divisor 64: shrink the portrait
    (never enlarge it) by the largest scale whose 64-padded size fits in ``area``.
    """
    h0, w0 = image_height, image_width
    d = SIZE_DIVISOR
    if h0 * w0 <= area:
        max_scale, min_scale = 1.0, 0.1
    else:
        max_scale = math.sqrt(area / (h0 * w0))
        # Upstream solves the padded-area quadratic with "2ac" where "4ac" is textbook; kept so
        # that sizes match upstream's exactly.
        a = h0 * w0
        b = (d - 1) * (h0 + w0)
        c = (d - 1) ** 2 - area
        min_scale = (-b + math.sqrt(b * b - 2 * a * c)) / (2 * a)
    for i in range(100):
        scale = max_scale - (max_scale - min_scale) * i / 100
        height = math.ceil(int(h0 * scale) / d) * d
        width = math.ceil(int(w0 * scale) / d) * d
        if height * width <= area:
            return height, width
    aspect = h0 / w0
    height = int(math.sqrt(area * aspect)) // d * d
    width = int(math.sqrt(area / aspect)) // d * d
    if height >= h0 or width >= w0:
        height, width = h0 // d * d, w0 // d * d
    return height, width


def audio_clip_count(num_samples: int, frames_per_clip: int, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
    """Clips upstream generates for this much audio (before ``--num_clip`` caps it)."""
    samples_16k = num_samples * AUDIO_SAMPLE_RATE // sample_rate
    # wav2vec2's feature extractor: 25 ms window, 20 ms hop
    frames_50hz = max(0, (samples_16k - 400) // 320 + 1)
    frames_30hz = int(frames_50hz / 50 * 30)
    return int(frames_30hz / (frames_per_clip * 1.2)) + 1


def video_frame_count(audio_seconds: float, num_clips: int, frames_per_clip: int) -> int:
    """Frames written: every generated frame, but no further than the end of the audio."""
    generated = num_clips * frames_per_clip
    return max(1, min(generated, math.ceil(audio_seconds * FPS - 1e-9)))
