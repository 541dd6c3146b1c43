"""LiveKit Agents: a ``VideoGenerator`` over a live session, for livekit's ``AvatarRunner`` (in-process).

The agent's TTS audio reaches :meth:`LiveAvatarVideoGenerator.push_audio` (through an
``AudioReceiver`` such as ``QueueAudioOutput`` or ``DataStreamAudioReceiver``); iterating the
generator yields each block's video frames, the speech they show (only while speaking: the runner
counts played audio for ``playback_position``), and ``AudioSegmentEnd`` when an utterance has been
played. ``clear_buffer`` is barge-in. The runner's AV synchronizer paces the frames in real time,
so the generator makes a block whenever the runner asks for more. See README "LiveKit Agents".

Needs ``pip install 'liveavatar[livekit]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarOptions, VideoGenerator

from liveavatar.engines.base import LiveSession


def avatar_options(session: LiveSession) -> AvatarOptions:
    """The AvatarRunner's options matching ``session`` (size, fps, mono audio at its rate)."""
    return AvatarOptions(
        video_width=session.width,
        video_height=session.height,
        video_fps=session.fps,
        audio_sample_rate=session.sample_rate,
        audio_channels=1,
    )


class LiveAvatarVideoGenerator(VideoGenerator):
    """livekit-agents' avatar ``VideoGenerator`` driven by a liveavatar ``LiveSession``."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self._closed = False

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            self.session.end_of_speech()
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
        mono = pcm[:, 0] if frame.num_channels == 1 else pcm.mean(axis=1).astype(np.int16)
        self.session.push_audio(mono, sample_rate=frame.sample_rate)  # other rates are resampled

    def clear_buffer(self) -> None:
        self.session.clear()

    async def aclose(self) -> None:
        self._closed = True
        await asyncio.to_thread(self.session.close)

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        s = self.session
        while not self._closed:
            block = await asyncio.to_thread(s.next_block)
            rgba = np.concatenate([block.frames, np.full((*block.frames.shape[:3], 1), 255, np.uint8)], axis=3)
            for frame in rgba:
                yield rtc.VideoFrame(s.width, s.height, rtc.VideoBufferType.RGBA, frame.tobytes())
            if block.speaking:
                pcm = np.round(np.clip(block.audio, -1, 32767 / 32768) * 32768).astype(np.int16)
                yield rtc.AudioFrame(pcm.tobytes(), s.sample_rate, 1, len(pcm))
            for event in s.poll_events():
                if event.get("type") == "playback.finished" and not event.get("interrupted"):
                    yield AudioSegmentEnd()
