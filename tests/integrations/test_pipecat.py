"""The Pipecat FrameProcessor in a pipeline, with pipecat's own test utilities.

Runs where `liveavatar[pipecat]` is installed (.ci/run builds a virtual environment for it)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("pipecat")
from pipecat.frames.frames import (  # noqa: E402
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402

from liveavatar.integrations.pipecat import LiveAvatarProcessor  # noqa: E402
from support.live_standin import standin_session  # noqa: E402

SR = 16_000


def tts_frames(seconds: float) -> tuple[np.ndarray, list]:
    t = np.arange(int(seconds * SR)) / SR
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    step = SR // 50
    return pcm, [
        TTSAudioRawFrame(audio=pcm[lo : lo + step].tobytes(), sample_rate=SR, num_channels=1)
        for lo in range(0, len(pcm), step)
    ]


def split(down):
    images = [f for f in down if isinstance(f, OutputImageRawFrame)]
    audio = [f for f in down if type(f) is OutputAudioRawFrame]
    return images, audio


def test_tts_audio_becomes_avatar_frames_and_the_same_audio():
    pcm, frames = tts_frames(1.0)
    down, _ = asyncio.run(
        run_test(
            LiveAvatarProcessor(standin_session()),
            frames_to_send=[TTSStartedFrame(), *frames, TTSStoppedFrame(), SleepFrame(sleep=1.6)],
        )
    )
    images, audio = split(down)
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)  # replaced by the avatar's own audio
    assert images and images[0].size == (32, 32) and images[0].format == "RGB"
    back = np.concatenate([np.frombuffer(f.audio, np.int16) for f in audio])
    assert np.array_equal(back[: len(pcm)], pcm) and not back[len(pcm) :].any()  # the last block's rest: silence
    assert 1.2 * 25 <= len(images) <= 2.2 * 25  # paced in real time: ~1.6 s of frames
    grey = np.array([f.image[0] for f in images])
    assert grey.max() > 0 and grey[-5:].max() == 0  # it spoke, then listens


def test_an_interruption_stops_the_avatar_speaking():
    _, frames = tts_frames(3.0)
    down, _ = asyncio.run(
        run_test(
            LiveAvatarProcessor(standin_session()),
            frames_to_send=[
                TTSStartedFrame(),
                *frames,
                SleepFrame(sleep=0.8),
                InterruptionFrame(),
                SleepFrame(sleep=0.6),
            ],
        )
    )
    _, audio = split(down)
    played = sum(len(f.audio) // 2 for f in audio) / SR
    assert 0.5 <= played <= 1.2  # of the 3 s queued, only what played before the interruption
