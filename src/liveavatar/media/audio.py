"""Reading the driving speech: any format PyAV decodes, as float32 samples.

One decoder serves everything that reads the speech (the checks, the engines, prepare and the
writer), so they all hear the same samples: the encoder priming of AAC/Opus inputs (frames that
the container stamps before time 0) is dropped here, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from liveavatar.errors import UserError
from liveavatar.media import require_input_file
from liveavatar.sizing import AUDIO_SAMPLE_RATE

MIN_AUDIO_SECONDS = 0.1
AUDIO_FIX = "give a WAV or MP3 file with speech"


def iter_audio(path: Path, sample_rate: int, layout: str = "mono", flag: str = "--audio") -> Iterator[np.ndarray]:
    """Yield float32 ``[channels, n]`` blocks of ``path`` resampled to ``sample_rate`` and ``layout``.

    Samples stamped before the stream's start (AAC/Opus priming, marked by an edit list or by
    negative timestamps) are dropped. Channels are mixed down by averaging (ffmpeg's default
    matrix adds them at -3 dB each, which takes 5.1 speech far past full scale and looks like
    clipping). Decoding errors become a one-line UserError naming ``flag``.
    """
    import av

    require_input_file(path, flag, "an audio file", AUDIO_FIX)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError(flag, f"{path} has no audio stream", AUDIO_FIX)
            stream = container.streams.audio[0]
            wanted = 1 if layout == "mono" else 2
            resampler = None
            for frame in container.decode(stream):
                skip = _priming_samples(frame)
                if skip >= frame.samples:
                    continue
                if resampler is None:
                    # keeps the input's channels, packed: PyAV crashes on layout=None and on
                    # planar frames of 8 channels or more
                    resampler = av.AudioResampler(format="flt", layout=frame.layout.name, rate=sample_rate)
                for out in resampler.resample(_drop_leading(frame, skip) if skip else frame):
                    yield _mix(out, wanted)
            for out in resampler.resample(None) if resampler is not None else ():
                yield _mix(out, wanted)
    except UserError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise UserError(flag, f"{path} is not an audio file this tool can decode ({reason})", AUDIO_FIX) from None


def _mix(frame, channels: int) -> np.ndarray:
    """A packed float frame as ``[channels, n]`` (1 or 2), mixed down without raising the level."""
    block = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).T
    if block.shape[0] == channels:
        return block
    mono = block.mean(axis=0, keepdims=True, dtype=np.float32)
    return mono if channels == 1 else np.repeat(mono, 2, axis=0)


def _priming_samples(frame) -> int:
    """How many leading samples of a decoded frame lie before time 0 (encoder priming)."""
    if frame.pts is None or frame.time_base is None or frame.pts >= 0:
        return 0
    return int(round(-frame.pts * frame.time_base * frame.sample_rate))


def _drop_leading(frame, count: int):
    """A copy of an audio frame without its first ``count`` samples."""
    import av

    data = frame.to_ndarray()
    channels = 1 if frame.format.is_planar else len(frame.layout.channels)
    trimmed = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(data[:, count * channels :]), format=frame.format.name, layout=frame.layout.name
    )
    trimmed.sample_rate = frame.sample_rate
    return trimmed


def decode_audio(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE, flag: str = "--audio") -> np.ndarray:
    """All of ``path`` as float32 mono at ``sample_rate``, as decoded (may hold NaN/Inf or exceed 1)."""
    blocks = [b.reshape(-1) for b in iter_audio(path, sample_rate, "mono", flag)]
    samples = np.concatenate(blocks).astype(np.float32, copy=False) if blocks else np.zeros(0, np.float32)
    if len(samples) < MIN_AUDIO_SECONDS * sample_rate:
        raise UserError(
            flag,
            f"{path} holds {len(samples) / sample_rate:.2f} s of audio",
            f"give at least {MIN_AUDIO_SECONDS} s of speech",
        )
    return samples


def count_non_finite(samples: np.ndarray) -> int:
    return int(samples.size - np.count_nonzero(np.isfinite(samples)))


def read_audio(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE, flag: str = "--audio") -> np.ndarray:
    """Decode ``path`` to float32 mono samples in [-1, 1] at ``sample_rate``.

    Samples that are NaN or infinite (a broken float WAV) are refused, not guessed at: every
    later measure and the lip motion would be garbage. `liveavatar prepare` repairs them.
    """
    samples = decode_audio(path, sample_rate, flag)
    bad = count_non_finite(samples)
    if bad:
        raise UserError(
            flag,
            f"{path} holds {bad} non-finite samples (NaN or infinity)",
            "re-export the audio, or let 'liveavatar prepare --audio' replace them with silence",
        )
    return np.clip(samples, -1.0, 1.0, out=samples)


def repair_non_finite(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace NaN/Inf samples with silence; returns (samples, how many were replaced)."""
    bad = ~np.isfinite(samples)
    count = int(bad.sum())
    if count:
        samples = np.where(bad, np.float32(0.0), samples).astype(np.float32)
    return np.clip(samples, -1.0, 1.0), count
