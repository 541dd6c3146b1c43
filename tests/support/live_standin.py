"""A small stand-in LiveSession (the engines' real ones come from issue 25) and the registry a
transport test needs: the transport is tested on what it must do with ANY session (carry frames and
the audio they show on one clock, events, controls), with a mouth that is easy to measure.

The stand-in draws a light face with a dark mouth whose height follows the loudness of the audio
of its own frame, so any offset between the received audio and the received mouth is the
transport's doing.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from liveavatar.engines.base import LiveBlock

SIZE = 128
MOUTH = (slice(76, 108), slice(40, 88))  # rows, cols of the box the mouth lives in
BLOCK_FRAMES = 2


def mouth_opening(frame: np.ndarray) -> float:
    """Fraction of dark pixels in the mouth box (0 closed .. ~0.7 wide open)."""
    box = frame[MOUTH[0], MOUTH[1]].astype(np.float32).mean(axis=-1)
    return float(np.mean(box < 80))


class StandinSession:
    fps = 25
    sample_rate = 16_000
    width = height = SIZE
    lookahead_ms = 0.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued = np.zeros(0, np.float32)
        self._open = False  # an utterance is under way (pushed, not yet ended and drained)
        self._ended = False
        self._frame = 0
        self._played = 0
        self.closed = False
        self.pushed = 0
        self._events: list[dict] = []
        self._speaking = False

    def push_audio(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm)
        x = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        with self._lock:
            self._queued = np.concatenate([self._queued, x])
            self._open, self._ended = True, False
            self.pushed += len(x)

    def end_of_speech(self) -> None:
        with self._lock:
            self._ended = True

    def clear(self) -> float:
        with self._lock:
            played = self._played / self.fps
            if self._speaking:
                self._events.append({"type": "playback.finished", "position_s": played, "interrupted": True})
            self._queued, self._open, self._ended, self._played, self._speaking = np.zeros(0, np.float32), False, False, 0, False
            return played

    def poll_events(self) -> list[dict]:
        with self._lock:
            out, self._events = self._events, []
            return out

    def next_block(self) -> LiveBlock:
        per_frame = self.sample_rate // self.fps
        need = BLOCK_FRAMES * per_frame
        with self._lock:
            speaking = self._open
            audio = np.zeros(need, np.float32)
            if speaking and not self._speaking:
                self._speaking = True
                self._events.append({"type": "speech.started", "at_s": self._frame / self.fps})
            if speaking:
                take = self._queued[:need]
                audio[: len(take)] = take
                self._queued = self._queued[need:]
                self._played += BLOCK_FRAMES
                if self._ended and not len(self._queued):
                    self._events.append({"type": "playback.finished", "position_s": self._played / self.fps, "interrupted": False})
                    self._open, self._ended, self._played, self._speaking = False, False, 0, False
            start, self._frame = self._frame, self._frame + BLOCK_FRAMES
        frames = np.stack([draw(audio[j * per_frame : (j + 1) * per_frame]) for j in range(BLOCK_FRAMES)])
        return LiveBlock(frames=frames, audio=audio, start_frame=start, speaking=speaking)

    def close(self) -> None:
        self.closed = True


def draw(audio: np.ndarray) -> np.ndarray:
    frame = np.full((SIZE, SIZE, 3), (90, 120, 160), np.uint8)
    frame[16:120, 24:104] = (225, 190, 160)  # the face
    db = 20 * np.log10(float(np.sqrt(np.mean(np.square(audio)))) + 1e-9)
    opening = float(np.clip((db + 50.0) / 35.0, 0.0, 1.0))
    half = 1 + round(14 * opening)
    mid = (MOUTH[0].start + MOUTH[0].stop) // 2
    frame[mid - half : mid + half, 48:80] = (40, 10, 20)
    frame[mid - 1 : mid + 1, 44:84] = (150, 60, 60)  # the lips' line, always there
    return frame


class StandinRegistry:
    """Sessions by id, one client at a time, closed ``idle_s`` after their client left."""

    def __init__(self, idle_s: float = 30.0) -> None:
        self.idle_s = idle_s
        self.sessions: dict[str, StandinSession] = {}
        self._held: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add(self, session_id: str, session: StandinSession | None = None) -> StandinSession:
        self.sessions[session_id] = session or StandinSession()
        return self.sessions[session_id]

    def live_session(self, session_id: str):
        return self.sessions.get(session_id)

    def client_attached(self, session_id: str) -> bool:
        if session_id in self._held:
            return False
        self._held.add(session_id)
        timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        return True

    def client_detached(self, session_id: str) -> None:
        self._held.discard(session_id)
        self._timers[session_id] = asyncio.get_running_loop().call_later(self.idle_s, self._expire, session_id)

    def _expire(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            session.close()
