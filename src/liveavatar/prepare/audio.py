"""Audio fixes: loudness to the guide's level with a peak ceiling, shorter pauses, 16 kHz 16-bit WAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveavatar.checks import speech

TARGET_LEVEL_DB = -16.0  # raised to this when below the guide's -18 dBFS
MIN_LEVEL_DB = -18.0
PEAK_CEILING_DB = -1.0
MAX_PAUSE_S = 1.0  # --shorten_pauses cuts longer pauses down to KEEP_PAUSE_S
KEEP_PAUSE_S = 0.4


def limit_peaks(x: np.ndarray, sr: int = speech.SR, ceiling_db: float = PEAK_CEILING_DB) -> np.ndarray:
    """Look-ahead peak limiter: a smooth gain that keeps every sample at or under the ceiling."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    if np.max(np.abs(x), initial=0.0) <= ceiling:
        return x
    w = int(0.005 * sr) | 1
    env = maximum_filter1d(np.abs(x).astype(np.float64), size=2 * w + 1)
    env = uniform_filter1d(env, size=w)  # smoothing a max over twice the window stays above |x|
    gain = np.minimum(1.0, ceiling / np.maximum(env, 1e-9))
    return np.clip(x * gain, -ceiling, ceiling).astype(np.float32)


def normalise(x: np.ndarray, sr: int = speech.SR) -> tuple[np.ndarray, float]:
    """Raise quiet speech to TARGET_LEVEL_DB and limit the peaks; returns (samples, gain in dB)."""
    level = speech.speech_level_db(x, speech.speech_mask(x, sr), sr)
    gain_db = TARGET_LEVEL_DB - level if speech.EPS_DB < level < MIN_LEVEL_DB else 0.0
    y = x * np.float32(10 ** (gain_db / 20))
    return limit_peaks(y, sr), gain_db


def shorten_pauses(
    x: np.ndarray, sr: int = speech.SR, max_pause_s: float = MAX_PAUSE_S, keep_s: float = KEEP_PAUSE_S
) -> tuple[np.ndarray, float]:
    """Cut pauses longer than ``max_pause_s`` down to ``keep_s`` (10 ms cross-fades); returns (samples, seconds removed)."""
    mask = speech.speech_mask(x, sr)
    n = int(speech.VAD_FRAME_S * sr)
    fade = int(0.01 * sr)
    pieces, pos, removed = [], 0, 0
    for a, b in speech.runs(mask, False):
        if (b - a) * speech.VAD_FRAME_S <= max_pause_s:
            continue
        half = int(keep_s * sr / 2)
        cut_from, cut_to = a * n + half, (b * n if b < len(mask) else len(x)) - half
        if cut_to - cut_from <= 2 * fade:
            continue
        pieces.append(x[pos:cut_from].copy())
        pos = cut_to
        removed += cut_to - cut_from
    if not pieces:
        return x, 0.0
    pieces.append(x[pos:].copy())
    ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    out = pieces[0]
    for nxt in pieces[1:]:
        if len(out) >= fade and len(nxt) >= fade:
            blended = out[-fade:] * ramp + nxt[:fade] * ramp[::-1]
            out = np.concatenate([out[:-fade], blended, nxt[fade:]])
        else:
            out = np.concatenate([out, nxt])
    return out.astype(np.float32), removed / sr


def write_wav(path: Path, x: np.ndarray, sr: int = speech.SR) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(x, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
