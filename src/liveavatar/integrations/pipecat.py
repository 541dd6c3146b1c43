"""Pipecat: a FrameProcessor that turns the TTS's audio into the avatar's video (and that audio).

Place it between the TTS and the transport's output. ``TTSAudioRawFrame``s are pushed into the live
session (not passed on: the avatar's own audio, in step with its frames, replaces them);
``TTSStoppedFrame`` ends the utterance; an ``InterruptionFrame`` (the user barged in) clears it.
While the pipeline runs, a task paces the session in real time and pushes, per block, its frames
as ``OutputImageRawFrame``s and, while it speaks, its audio as ``OutputAudioRawFrame``. See README
"Pipecat".

Needs ``pip install 'liveavatar[pipecat]'``.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from liveavatar.engines.base import LiveSession


class LiveAvatarProcessor(FrameProcessor):
    """TTS audio in; the avatar's ``OutputImageRawFrame``s and audio out; interruptions honoured."""

    def __init__(self, session: LiveSession, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self._pacer: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            pcm = np.frombuffer(frame.audio, dtype=np.int16).reshape(-1, frame.num_channels)
            self.session.push_audio(
                pcm[:, 0] if frame.num_channels == 1 else pcm.mean(axis=1).astype(np.int16),
                sample_rate=frame.sample_rate,
            )
            return
        if isinstance(frame, TTSStoppedFrame):
            self.session.end_of_speech()
        elif isinstance(frame, InterruptionFrame):
            self.session.clear()
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._pacer = asyncio.create_task(self._pace())
            return
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await self._stop()
        await super().cleanup()

    async def _stop(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            try:
                await self._pacer
            except asyncio.CancelledError:
                pass
            self._pacer = None

    async def _pace(self) -> None:
        s = self.session
        start, made = time.monotonic(), 0
        while True:
            wait = start + made / s.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            block = await asyncio.to_thread(s.next_block)
            made += len(block.frames)
            s.poll_events()  # the session's events are for transports that report them; pipecat has its own
            for rgb in block.frames:
                await self.push_frame(OutputImageRawFrame(image=rgb.tobytes(), size=(s.width, s.height), format="RGB"))
            if block.speaking:
                pcm = np.round(np.clip(block.audio, -1, 32767 / 32768) * 32768).astype(np.int16)
                await self.push_frame(
                    OutputAudioRawFrame(audio=pcm.tobytes(), sample_rate=s.sample_rate, num_channels=1)
                )
