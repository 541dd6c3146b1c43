"""Synthetic inputs for the input-check and prepare tests: speech from eSpeak NG, portraits from skimage.

Speech comes from the ``espeakng-loader`` wheel (libespeak-ng + its voice data) through ctypes, so
no system package is needed.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

SENTENCE = (
    "Hello, my name is Ava and I build rockets for a living. Every morning I check the engines, "
    "talk with the team about the launch plan, and write down what we learned the day before. "
    "It is careful work, but I enjoy every minute of it."
)

# espeak_PARAMETER values
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


def speak(text: str = SENTENCE, *, voice: str = "en-us", rate: int = 165, pitch: int = 50, pitch_range: int = 50) -> tuple[np.ndarray, int]:
    """Synthesize ``text``; returns float32 mono samples in [-1, 1] and the sample rate (22050)."""
    import espeakng_loader

    lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
    data = espeakng_loader.get_data_path().encode()
    sr = lib.espeak_Initialize(2, 0, ctypes.c_char_p(data), 0)  # AUDIO_OUTPUT_SYNCHRONOUS
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def _collect(wav, n, _events):  # noqa: ANN001 - ctypes callback
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    callback = callback_type(_collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, 100)):
        lib.espeak_SetParameter(param, value, 0)
    buf = text.encode()
    lib.espeak_Synth(ctypes.c_char_p(buf), len(buf) + 1, 0, 0, 0, 0x1000, None, None)  # espeakCHARS_AUTO... + endpause
    lib.espeak_Synchronize()
    lib.espeak_Terminate()
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
    return audio, int(sr)
