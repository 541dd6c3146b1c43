"""Reading the driving speech: any format PyAV decodes, as float32 mono at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveavatar.errors import UserError
from liveavatar.media import require_input_file
from liveavatar.sizing import AUDIO_SAMPLE_RATE

MIN_AUDIO_SECONDS = 0.1


def read_audio(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE, flag: str = "--audio") -> np.ndarray:
    """Decode ``path`` to float32 mono samples in [-1, 1] at ``sample_rate``."""
    import av

    fix = "give a WAV or MP3 file with speech"
    require_input_file(path, flag, "an audio file", fix)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError(flag, f"{path} has no audio stream", fix)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except UserError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UserError(flag, f"{path} is not an audio file this tool can decode ({reason})", fix) from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(samples) < MIN_AUDIO_SECONDS * sample_rate:
        raise UserError(flag, f"{path} holds {len(samples) / sample_rate:.2f} s of audio", f"give at least {MIN_AUDIO_SECONDS} s of speech")
    return np.clip(samples, -1.0, 1.0)
