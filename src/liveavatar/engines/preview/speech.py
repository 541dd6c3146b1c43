"""Audio -> per-frame mouth parameters: loudness, visemes from phonemes, coarticulation.

Everything is kept per video frame (25 fps) or per 10 ms phone step: a few small arrays, so a
10-minute clip costs a few hundred kilobytes here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveavatar.engines.base import Notify
from liveavatar.sizing import FPS

# Viseme targets per CMU phone: (opening scale, lip spread, lip rounding, lip closure).
_VISEMES: dict[str, tuple[float, float, float, float]] = {}
for _names, _target in (
    ("SIL", (0.0, 0.0, 0.0, 0.0)),  # rest
    ("M B P", (0.0, 0.0, 0.0, 1.0)),  # closed, lips pressed
    ("F V", (0.15, 0.1, 0.0, 0.4)),  # lower lip to the upper teeth
    ("TH DH", (0.35, 0.2, 0.0, 0.0)),  # tongue between the teeth
    ("L T D N S Z", (0.4, 0.25, 0.0, 0.0)),  # alveolar
    ("CH JH SH ZH", (0.4, 0.0, 0.6, 0.0)),  # protruded
    ("K G NG HH", (0.55, 0.1, 0.0, 0.0)),  # velar, open-ish
    ("AA AE AH AY AW", (1.0, 0.1, 0.0, 0.0)),  # open
    ("EH EY ER", (0.75, 0.4, 0.0, 0.0)),  # mid, spread
    ("IH IY Y", (0.5, 0.8, 0.0, 0.0)),  # wide
    ("AO OW OY", (0.8, 0.0, 0.6, 0.0)),  # round open
    ("UH UW W", (0.45, 0.0, 1.0, 0.0)),  # round
    ("R", (0.4, 0.0, 0.45, 0.0)),
):
    for _name in _names.split():
        _VISEMES[_name] = _target
_UNKNOWN = (0.6, 0.1, 0.0, 0.0)
_SILENT = {"SIL"}
STEP_S = 0.01  # phone raster step


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth parameters, all float32 of length ``num_frames``."""

    open: np.ndarray  # 0 closed .. 1 fully open
    spread: np.ndarray  # -1 rounded/puckered .. +1 wide
    loudness: np.ndarray  # 0 .. 1 (speech level), 0 in silence
    source: str  # "alignment", "phonemes" or "loudness"


def frame_loudness(
    audio: np.ndarray, sr: int, num_frames: int, window_s: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """RMS level (dBFS) and spectral centroid (Hz) of a window centred on each frame time."""
    db = np.full(num_frames, -120.0, np.float32)
    centroid = np.zeros(num_frames, np.float32)
    for lo in range(0, num_frames, 1024):  # a block of frames at a time: bounded memory
        idx = np.arange(lo, min(num_frames, lo + 1024))
        db[idx], centroid[idx] = window_levels(audio, sr, np.round(idx * sr / FPS).astype(np.int64), window_s)
    return db, centroid


def window_levels(
    audio: np.ndarray, sr: int, centres: np.ndarray, window_s: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """RMS level (dBFS) and spectral centroid (Hz) of windows centred on sample indices ``centres``
    (samples outside ``audio`` count as silence). A live session calls it block by block."""
    half = int(window_s * sr / 2)
    win = np.hanning(2 * half).astype(np.float32)
    freqs = np.fft.rfftfreq(2 * half, 1 / sr).astype(np.float32)
    n = len(audio)
    offs = centres[:, None] + np.arange(-half, half)[None, :]
    valid = (offs >= 0) & (offs < n)
    seg = np.where(valid, audio[np.clip(offs, 0, max(0, n - 1))] if n else 0.0, 0.0).astype(np.float32)
    rms = np.sqrt((seg**2).mean(axis=1) + 1e-12)
    spec = np.abs(np.fft.rfft(seg * win, axis=1))
    centroid = (spec * freqs).sum(axis=1) / (spec.sum(axis=1) + 1e-9)
    return (20 * np.log10(rms)).astype(np.float32), centroid.astype(np.float32)


def normalise_loudness(db: np.ndarray) -> np.ndarray:
    """Map frame levels to 0..1 relative to the speech level; silence (and noise) to 0."""
    span = level_span(db, db[db > -70])
    return np.zeros_like(db) if span is None else scale_loudness(db, *span)


def level_span(db: np.ndarray, audible: np.ndarray) -> tuple[float, float] | None:
    """(speech reference, noise floor) in dBFS from frame levels ``db`` and their audible part;
    None without enough speech to tell."""
    if audible.size < 3:
        return None
    ref = float(np.percentile(audible, 95))
    floor = max(ref - 32.0, float(np.percentile(db, 10)) + 6.0, -62.0)
    return ref, floor


def scale_loudness(db: np.ndarray, ref: float, floor: float) -> np.ndarray:
    return np.clip((db - floor) / max(ref - floor, 6.0), 0.0, 1.0).astype(np.float32)


def viseme_raster(phones: list[tuple[str, float, float]], steps: int) -> np.ndarray:
    """Viseme targets on a 10 ms raster, ``[steps, 4]``."""
    out = np.zeros((steps, 4), np.float32)
    for name, t0, t1 in phones:
        a, b = int(round(t0 / STEP_S)), int(round(t1 / STEP_S))
        out[max(0, a) : min(steps, b)] = _VISEMES.get(name, _UNKNOWN)
    return out


def coarticulate(raster: np.ndarray, sigma_s: float = 0.035) -> np.ndarray:
    """Blend neighbouring visemes (symmetric, so no lag); closures are kept sharper."""
    from scipy.ndimage import gaussian_filter1d

    out = gaussian_filter1d(raster, sigma_s / STEP_S, axis=0, mode="nearest")
    out[:, 3] = np.maximum(out[:, 3], gaussian_filter1d(raster[:, 3], 0.012 / STEP_S, mode="nearest") * 0.9)
    return out


def phones_reliable(phones: list[tuple[str, float, float]], loud: np.ndarray) -> bool:
    """Do the phonemes fit the audio? Loud frames should be covered by phones (not silence) and
    the phone rate should be speech-like; sung notes, tones and voices the English model cannot
    follow come out as mostly silence or a few stray phones and fail this."""
    n = len(loud)
    if n < 10:
        return False
    spoken = np.zeros(n, bool)
    count = 0
    for name, t0, t1 in phones:
        if name in _SILENT:
            continue
        count += 1
        spoken[max(0, int(t0 * FPS) - 1) : int(np.ceil(t1 * FPS)) + 1] = True  # +-1 frame tolerance
    speech = loud > 0.4
    if speech.sum() < 5:
        return False
    hit = spoken[speech].mean()
    rate = count / max(speech.sum() / FPS, 1e-3)
    return bool(hit >= 0.7 and 4.0 < rate < 25.0)


def _fallback_shape(centroid: np.ndarray, loud: np.ndarray) -> np.ndarray:
    """Without phonemes: bright sounds spread the lips, dark ones round them."""
    speech = loud > 0.2
    logc = np.log(np.maximum(centroid, 50.0))
    if speech.sum() > 3:
        return spectral_shape(logc, loud, float(logc[speech].mean()), float(logc[speech].std()))
    return spectral_shape(logc, loud, 0.0, np.inf)


def spectral_shape(log_centroid: np.ndarray, loud: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Viseme targets ``[n, 4]`` from the log spectral centroid against the speech's mean and spread
    (the whole track's offline; a running estimate live)."""
    out = np.zeros((len(loud), 4), np.float32)
    out[:, 0] = 0.8
    z = (log_centroid - mean) / (std + 1e-6)
    out[:, 1] = np.clip(0.4 * z, 0, 0.8)
    out[:, 2] = np.clip(-0.4 * z, 0, 0.8)
    return out


def mouth_opening(shape: np.ndarray, loud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Viseme targets ``[n, 4]`` and loudness -> (opening before smoothing, lip spread), per frame."""
    scale, spread, rnd, closure = shape[:, 0], shape[:, 1], shape[:, 2], shape[:, 3]
    scale = np.maximum(scale, 0.35 * (loud > 0.25))  # never mute loud speech entirely
    open_ = loud**0.8 * (0.35 + 0.65 * scale) * (1.0 - 0.85 * closure)
    return open_, spread - rnd


def analyse_speech(audio: np.ndarray, sr: int, num_frames: int, transcript: str | None, notify: Notify) -> MouthTrack:
    """Per-frame mouth parameters for ``num_frames`` frames at 25 fps."""
    from scipy.ndimage import gaussian_filter1d

    from liveavatar.engines.preview import phonemes

    db, centroid = frame_loudness(audio, sr, num_frames)
    loud = normalise_loudness(db)
    steps = num_frames * 4
    phones, source = None, "loudness"
    if transcript:
        phones, why = phonemes.align(audio, sr, transcript)
        if phones is None:
            notify(f"warning: transcript not used ({why}); timing lips from recognised phonemes instead")
        else:
            source = "alignment"
    if phones is None and loud.max() > 0:
        phones = phonemes.recognise(audio, sr)
        source = "phonemes"
        if not phones_reliable(phones, loud):
            notify(
                "note: the speech does not look like English phonemes (another language, singing or noise?); lips follow loudness and timbre instead"
            )
            phones, source = None, "loudness"
    if phones is not None:
        shape = coarticulate(viseme_raster(phones, steps))[::4]
    else:
        shape = _fallback_shape(gaussian_filter1d(centroid, 1.5), loud)
    open_, spread = mouth_opening(shape, loud)
    open_ = gaussian_filter1d(open_, 0.7, mode="nearest")
    open_[loud <= 0.0] = 0.0
    return MouthTrack(
        open=np.clip(open_, 0, 1).astype(np.float32),
        spread=np.clip(spread, -1, 1).astype(np.float32),
        loudness=loud,
        source=source,
    )
