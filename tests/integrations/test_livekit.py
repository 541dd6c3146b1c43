"""The LiveKit Agents VideoGenerator with livekit's own classes (no room: no LiveKit server runs here).

Runs where `liveavatar[livekit]` is installed (.ci/run builds a virtual environment for it)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("livekit.agents")
from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd, QueueAudioOutput  # noqa: E402

from liveavatar.integrations.livekit import LiveAvatarVideoGenerator, avatar_options  # noqa: E402
from support.live_standin import standin_session  # noqa: E402

SR = 16_000


def tone(seconds: float, rate: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


async def drive(speech: np.ndarray, rate: int, clear_after_frames: int | None = None, max_frames: int = 120):
    """Agent side: livekit's QueueAudioOutput (what the agent's TTS writes to); avatar side: the
    runner's loop (audio receiver -> push_audio; generator -> frames)."""
    session = standin_session()
    gen = LiveAvatarVideoGenerator(session)
    agent_out = QueueAudioOutput(sample_rate=rate)
    for lo in range(0, len(speech), rate // 50):  # 20 ms TTS frames
        part = speech[lo : lo + rate // 50]
        await agent_out.capture_frame(rtc.AudioFrame(part.tobytes(), rate, 1, len(part)))
    agent_out.flush()  # the end of the TTS segment: AudioSegmentEnd for the receiver

    async def feed():
        async for item in agent_out:
            await gen.push_audio(item)
            if isinstance(item, AudioSegmentEnd):
                return

    await asyncio.wait_for(feed(), 10)
    out, video = [], 0
    async for item in gen:
        out.append(item)
        video += isinstance(item, rtc.VideoFrame)
        if clear_after_frames is not None and video == clear_after_frames:
            gen.clear_buffer()
        if video >= max_frames:
            break
    await gen.aclose()
    return session, out


def test_tts_audio_comes_back_as_frames_the_same_audio_and_a_segment_end():
    speech = tone(1.0)
    session, out = asyncio.run(drive(speech, SR))
    video = [f for f in out if isinstance(f, rtc.VideoFrame)]
    audio = [f for f in out if isinstance(f, rtc.AudioFrame)]
    assert (video[0].width, video[0].height, video[0].type) == (32, 32, rtc.VideoBufferType.RGBA)
    back = np.concatenate([np.frombuffer(f.data, np.int16) for f in audio])
    # every sample of the speech, once, in order; the last block's rest is silence
    assert (
        np.array_equal(back[: len(speech)], speech)
        and len(back) - len(speech) < 2 * 640
        and not back[len(speech) :].any()
    )
    ends = [i for i, f in enumerate(out) if isinstance(f, AudioSegmentEnd)]
    assert len(ends) == 1 and ends[0] > out.index(audio[-1])
    grey = np.array([np.frombuffer(f.data, np.uint8)[0] for f in video])
    assert grey[:25].min() > 0 and grey[-20:].max() == 0  # speaking frames, then listening ones
    opts = avatar_options(session)
    assert (opts.video_width, opts.video_fps, opts.audio_sample_rate, opts.audio_channels) == (32, 25, SR, 1)


def test_other_rates_are_resampled_and_clear_buffer_stops_the_speech():
    speech = tone(2.0, 24_000)
    _, out = asyncio.run(drive(speech, 24_000, clear_after_frames=20))
    audio = [f for f in out if isinstance(f, rtc.AudioFrame)]
    played = sum(f.samples_per_channel for f in audio) / SR
    assert all(f.sample_rate == SR for f in audio) and 0.7 <= played <= 0.9  # stopped at the clear (0.8 s)
    assert not any(isinstance(f, AudioSegmentEnd) for f in out)  # interrupted: the runner reports that itself


def test_avatar_runner_feeds_the_session_and_passes_clear_buffer_on():
    """livekit's AvatarRunner itself, on a Room that is never connected: its audio side runs (the
    receiver's frames reach the session; clear_buffer reaches the generator); its video side pulls
    the first block, then waits for the room before publishing it."""
    from livekit.agents.voice.avatar import AvatarRunner

    async def scenario():
        session = standin_session()
        gen = LiveAvatarVideoGenerator(session)
        audio = QueueAudioOutput(sample_rate=SR)
        runner = AvatarRunner(rtc.Room(), audio_recv=audio, video_gen=gen, options=avatar_options(session))
        await runner.start()
        speech = tone(1.0)
        for lo in range(0, len(speech), SR // 50):
            part = speech[lo : lo + SR // 50]
            await audio.capture_frame(rtc.AudioFrame(part.tobytes(), SR, 1, len(part)))
        audio.flush()  # the output's resampler holds the last 80 ms until the segment ends
        for _ in range(100):
            if session.queued_seconds + session.speech_seconds_played >= 0.99:
                break
            await asyncio.sleep(0.02)
        # the runner pulled the generator's first block (80 ms of the speech) before it waited for the room
        queued = session.queued_seconds + session.speech_seconds_played
        session.next_block()  # the utterance starts playing
        audio.clear_buffer()  # the agent was interrupted
        for _ in range(100):
            if session.queued_seconds == 0:
                break
            await asyncio.sleep(0.02)
        events = session.poll_events()
        await runner.aclose()
        return queued, session.queued_seconds, events

    queued, left, events = asyncio.run(scenario())
    assert queued == pytest.approx(1.0, abs=0.021) and left == 0
    finished = [e for e in events if e["type"] == "playback.finished"]
    assert finished and finished[-1]["interrupted"] is True
