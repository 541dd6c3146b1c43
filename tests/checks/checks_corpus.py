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


def speak(
    text: str = SENTENCE, *, voice: str = "en-us", rate: int = 165, pitch: int = 50, pitch_range: int = 50
) -> tuple[np.ndarray, int]:
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


GOOD_PROMPT = (
    "A woman in her forties with short light brown hair and blue eyes, wearing a white NASA flight suit "
    "with mission patches and an American flag on the shoulder, stands in front of a dark studio backdrop "
    "next to a space shuttle model. She is speaking clearly to the camera with a gentle, confident "
    "expression, nodding slightly and moving her head as she explains her work. Her hands stay relaxed "
    "and out of frame. The background shows a blurred display of a rocket and the flag. Soft frontal "
    "studio lighting falls evenly on her face, with a faint rim light on her hair and a shallow depth of "
    "field that keeps her eyes sharp. The camera holds a steady medium close-up shot at eye level. "
    "Photorealistic style, like a broadcast documentary interview, natural skin tones and fine detail "
    "in the fabric of the suit."
)

WOMAN_VOICE = "en-us+f3"


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(16_000, sr)
    return resample_poly(audio, 16_000 // g, sr // g).astype(np.float32)


def at_level(audio: np.ndarray, db: float) -> np.ndarray:
    """Scale so the speech RMS (speech frames only) is ``db`` dBFS."""
    from liveavatar.checks.speech import speech_level_db, speech_mask

    return (audio * 10 ** ((db - speech_level_db(audio, speech_mask(audio))) / 20)).astype(np.float32)


def clean_speech(voice: str = WOMAN_VOICE, level_db: float = -16.0, **kw) -> np.ndarray:
    """16 kHz float32 speech at ``level_db`` speech RMS."""
    audio, sr = speak(voice=voice, **kw)
    return at_level(to_16k(audio, sr), level_db)


def write_wav(path: Path, audio: np.ndarray, sr: int = 16_000, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1, 1), sr, subtype=subtype)
    return path


def save_image(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut().astype(np.float32)


# shadow edges across the face box (u, v in 0..1 across its width and height): vertical off the
# midline on either side, a hat-brim edge, a diagonal corner, and the old midline case
SHADOW_EDGES = {
    "left_third": lambda u, v: u < 0.3,
    "midline": lambda u, v: u < 0.5,
    "right_quarter": lambda u, v: u > 0.7,
    "brim": lambda u, v: v < 0.35,
    "lower_corner": lambda u, v: (1 - u) + (1 - v) < 0.9,
}


def shadowed(rgb: np.ndarray, box: tuple[float, float, float, float], edge: str, factor: float = 0.3) -> np.ndarray:
    """``rgb`` with the part of the face box ``(x, y, w, h)`` on one side of ``SHADOW_EDGES[edge]``
    (extended across the whole image) darkened by ``factor``: a hard shadow."""
    x, y, w, h = box
    rows, cols = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    out = rgb.astype(np.float32).copy()
    out[SHADOW_EDGES[edge]((cols - x) / w, (rows - y) / h)] *= factor
    return out
