"""The streaming MP4 writer: streams, durations, audio sync and trimming, atomic output."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from liveavatar.media.writer import VideoWriter, partial_path


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        info = {
            "vcodec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "rate": v.average_rate,
            "size": (v.codec_context.width, v.codec_context.height),
            "acodec": a.codec_context.name,
        }
    with av.open(str(path)) as c:
        info["frames"] = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        info["audio_s"] = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].codec_context.sample_rate
    return info


def click_track(path: Path, seconds: float, click_at: float, sr: int = 16000) -> Path:
    x = np.zeros(int(seconds * sr), np.float32)
    x[int(click_at * sr) : int(click_at * sr) + 160] = 0.9
    sf.write(str(path), x, sr, subtype="PCM_16")
    return path


def test_streams_frames_and_audio_trimmed_to_video(tmp_path):
    audio = click_track(tmp_path / "a.wav", 6.0, 1.0)
    out = tmp_path / "v.mp4"
    writer = VideoWriter(out, 128, 96, 25, audio)
    for _ in range(3):
        writer.write(np.full((25, 96, 128, 3), 100, np.uint8))
    assert not out.exists(), "the final name appears only on success"
    writer.finish()
    info = probe(out)
    assert info["vcodec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["rate"] == 25
    assert info["size"] == (128, 96) and info["acodec"] == "aac"
    assert info["frames"] == 75
    # 3 s of video: the 6 s of audio is cut to it (AAC adds at most a frame of priming/padding)
    assert 3.0 - 0.01 <= info["audio_s"] <= 3.0 + 2 * 1024 / 16000
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".mp4"] == ["v.mp4"]


def test_audio_and_video_stay_in_sync(tmp_path):
    audio = click_track(tmp_path / "a.wav", 4.0, 1.0)
    out = tmp_path / "v.mp4"
    writer = VideoWriter(out, 64, 64, 25, audio)
    for i in range(100):
        writer.write(np.full((64, 64, 3), 255 if i == 25 else 0, np.uint8))
    writer.finish()
    with av.open(str(out)) as c:
        flash = [f.time for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 128]
    with av.open(str(out)) as c:
        for f in c.decode(audio=0):
            samples = np.abs(f.to_ndarray()[0])
            if samples.max() > 0.3:
                click = f.time + int(np.argmax(samples > 0.3)) / f.sample_rate
                break
    assert len(flash) == 1
    assert abs(flash[0] - click) <= 0.02


def test_abort_keeps_finished_frames_as_partial(tmp_path, speech_path):
    out = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 64, 64, 25, speech_path) as writer:
            writer.write(np.zeros((30, 64, 64, 3), np.uint8))
            raise RuntimeError("engine failed")
    assert not out.exists()
    kept = partial_path(out)
    assert kept.exists() and probe(kept)["frames"] == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.partial.mp4"]


def test_abort_without_frames_leaves_nothing(tmp_path, speech_path):
    writer = VideoWriter(tmp_path / "v.mp4", 64, 64, 25, speech_path)
    assert writer.abort() is None
    assert list(tmp_path.iterdir()) == []


def test_rejects_wrong_frame_shape(tmp_path):
    writer = VideoWriter(tmp_path / "v.mp4", 64, 64, 25, None)
    with pytest.raises(ValueError):
        writer.write(np.zeros((1, 32, 64, 3), np.uint8))
    writer.abort()
