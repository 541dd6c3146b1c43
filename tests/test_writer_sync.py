"""A/V sync of the written MP4, measured as a player would see it.

The decoded output audio is cross-correlated with the input: input sample 0 must be heard when
frame 0 is shown, at every input rate and for inputs that carry their own AAC priming (M4A/MP4).
Tolerance: 1 ms. AAC is lossy, so the correlation peak may move by a sample or two (0.02-0.25 ms
at 8-48 kHz); the errors this guards against were 16-60 ms (priming not skipped, B-frame delay).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from liveavatar.media.audio import iter_audio
from liveavatar.media.writer import VideoWriter

TOLERANCE_S = 0.001
FPS = 25


def noise(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Broadband noise: its autocorrelation is one sharp peak, so the lag is unambiguous."""
    x = 0.3 * np.random.default_rng(seed).standard_normal((int(seconds * rate), channels))
    return x.astype(np.float32)


def write_aac_input(path: Path, x: np.ndarray, rate: int, fmt: str = "mp4") -> Path:
    """An AAC file as ffmpeg writes one (its priming marked by an edit list)."""
    with av.open(str(path), "w", format=fmt) as c:
        a = c.add_stream("aac", rate=rate)
        a.layout = "mono"
        for pos in range(0, len(x) - 1024 + 1, 1024):
            f = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[pos : pos + 1024, 0][None]), format="fltp", layout="mono"
            )
            f.sample_rate, f.pts, f.time_base = rate, pos, Fraction(1, rate)
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return path


def render(out: Path, audio: Path, frames: int) -> Path:
    writer = VideoWriter(out, 64, 64, FPS, audio)
    writer.write(np.zeros((frames, 64, 64, 3), np.uint8))
    return writer.finish()


def decoded(path: Path) -> tuple[list[float], float, np.ndarray, int, int]:
    """(video frame times, time of the first audio sample, mono audio, rate, audio frame count)."""
    with av.open(str(path)) as c:
        times = [f.time for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        rate = c.streams.audio[0].codec_context.sample_rate
    return times, frames[0].time, np.concatenate([f.to_ndarray()[0] for f in frames]), rate, len(frames)


def lag_seconds(heard: np.ndarray, reference: np.ndarray, rate: int, max_lag_s: float = 0.2) -> float:
    """Where the reference's first second starts in what is heard (seconds, may be negative)."""
    from scipy.signal import correlate

    ref = reference[:rate]
    pad = int(max_lag_s * rate)
    heard = np.concatenate([np.zeros(pad, np.float32), heard[: len(ref) + pad]])
    corr = correlate(heard, ref, mode="valid", method="fft")
    return (int(np.argmax(corr)) - pad) / rate


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_wav_first_sample_plays_with_frame_zero(tmp_path, rate):
    x = noise(3.0, rate)
    src = tmp_path / "in.wav"
    sf.write(str(src), x, rate, subtype="PCM_16")
    times, audio_t0, heard, out_rate, _ = decoded(render(tmp_path / "v.mp4", src, 50))
    assert out_rate == rate
    assert times[0] == 0.0 and times[:3] == pytest.approx([0, 1 / FPS, 2 / FPS])
    offset = audio_t0 + lag_seconds(heard, x[:, 0], rate) - times[0]
    assert abs(offset) <= TOLERANCE_S, f"{rate} Hz: audio is {offset * 1000:+.1f} ms off frame 0"


def test_stereo_input_stays_in_sync(tmp_path):
    x = noise(3.0, 48000, channels=2)
    src = tmp_path / "in.wav"
    sf.write(str(src), x, 48000, subtype="PCM_16")
    times, audio_t0, heard, rate, _ = decoded(render(tmp_path / "v.mp4", src, 50))
    assert abs(audio_t0 + lag_seconds(heard, x[:, 0], rate) - times[0]) <= TOLERANCE_S


@pytest.mark.parametrize("suffix,rate", [(".m4a", 16000), (".mp4", 44100), (".m4a", 48000)])
def test_aac_input_priming_is_not_heard(tmp_path, suffix, rate):
    """An AAC input's own 1024 priming samples are skipped, not played as audio."""
    x = noise(3.0, rate, seed=1)
    src = write_aac_input(tmp_path / f"in{suffix}", x, rate)
    times, audio_t0, heard, _, _ = decoded(render(tmp_path / "v.mp4", src, 50))
    assert abs(audio_t0 + lag_seconds(heard, x[:, 0], rate) - times[0]) <= TOLERANCE_S


@pytest.mark.parametrize("kind", ["wav", "m4a"])
def test_audio_frame_count_matches_the_video(tmp_path, kind):
    """160 frames at 25 fps = 6.4 s = exactly 100 AAC frames at 16 kHz: 100 decoded, not 101."""
    x = noise(8.0, 16000)
    if kind == "wav":
        src = tmp_path / "in.wav"
        sf.write(str(src), x, 16000, subtype="PCM_16")
    else:
        src = write_aac_input(tmp_path / "in.m4a", x, 16000)
    _, audio_t0, heard, _, count = decoded(render(tmp_path / "v.mp4", src, 160))
    assert audio_t0 == 0.0
    assert count == 100 and len(heard) == 102_400


def test_reader_and_writer_hear_the_same_samples(tmp_path):
    """The checks/engines (16 kHz reader) and the writer decode an M4A identically: no priming."""
    x = noise(2.0, 16000, seed=2)
    src = write_aac_input(tmp_path / "in.m4a", x, 16000)
    got = np.concatenate([b[0] for b in iter_audio(src, 16000)])
    assert abs(lag_seconds(got, x[:, 0], 16000)) <= TOLERANCE_S
    assert abs(len(got) - (len(x) // 1024) * 1024) <= 1024
