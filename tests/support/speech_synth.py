"""Offline English speech synthesis (espeak-ng from the `espeakng-loader` wheel) for samples and tests.

Test fixtures and the bundled sample speech are made with this, so nothing is downloaded.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

ESPEAK_SYNCHRONOUS = 2
ESPEAK_CHARS_AUTO = 0
ESPEAK_RATE = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def synthesize(
    text: str, voice: str = "en-us", words_per_minute: int = 160, pitch: int | None = None
) -> tuple[np.ndarray, int]:
    """Speak ``text``; return float32 mono samples in [-1, 1] and their sample rate (22050)."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    data = str(espeakng_loader.get_data_path()).encode()
    sample_rate = lib.espeak_Initialize(ESPEAK_SYNCHRONOUS, 0, data, 0)
    if sample_rate <= 0:
        raise RuntimeError("espeak-ng failed to initialise")
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(ESPEAK_RATE, words_per_minute, 0)
    if pitch is not None:
        lib.espeak_SetParameter(3, pitch, 0)  # espeakPITCH, 0-100
    pieces: list[np.ndarray] = []

    def collect(wav, count, _events):
        if count > 0:
            pieces.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    encoded = text.encode("utf-8")
    lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, ESPEAK_CHARS_AUTO, None, None)
    lib.espeak_Synchronize()
    samples = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
    return samples.astype(np.float32) / 32768.0, sample_rate


def write_speech(path: Path, text: str, sample_rate: int = 16_000, **kwargs) -> Path:
    """Synthesize ``text`` and write it as a 16-bit mono WAV at ``sample_rate``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    samples, rate = synthesize(text, **kwargs)
    if rate != sample_rate:
        from math import gcd

        g = gcd(rate, sample_rate)
        samples = resample_poly(samples, sample_rate // g, rate // g).astype(np.float32)
    sf.write(str(path), np.clip(samples, -1, 1), sample_rate, subtype="PCM_16")
    return path
