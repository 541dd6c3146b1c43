"""Stand-ins for the WebRTC transport's tests: a BlockMaker whose mouth is easy to measure (under
the real live Session), and a small paced run + registry shaped like the server's
(``live.runner.LiveRun`` / ``live.registry.SessionRegistry``).

The stand-in draws a light face with a dark mouth whose height follows the loudness of its own
frame's audio, so any offset between the received audio and the received mouth is the transport's.
"""

from __future__ import annotations

import threading
import time

import numpy as np

SIZE = 128
MOUTH = (slice(76, 108), slice(40, 88))  # rows, cols of the box the mouth lives in


def mouth_opening(frame: np.ndarray) -> float:
    """Fraction of dark pixels in the mouth box (0 closed .. ~0.7 wide open)."""
    box = frame[MOUTH[0], MOUTH[1]].astype(np.float32).mean(axis=-1)
    return float(np.mean(box < 80))


def draw(audio: np.ndarray) -> np.ndarray:
    frame = np.full((SIZE, SIZE, 3), (90, 120, 160), np.uint8)
    frame[16:120, 24:104] = (225, 190, 160)  # the face
    db = 20 * np.log10(float(np.sqrt(np.mean(np.square(audio)))) + 1e-9) if len(audio) else -180.0
    opening = float(np.clip((db + 50.0) / 35.0, 0.0, 1.0))
    half = 1 + round(14 * opening)
    mid = (MOUTH[0].start + MOUTH[0].stop) // 2
    frame[mid - half : mid + half, 48:80] = (40, 10, 20)
    frame[mid - 1 : mid + 1, 44:84] = (150, 60, 60)  # the lips' line, always there
    return frame


class StandinMaker:
    """A BlockMaker (live/session.py) drawing the measurable mouth."""

    width = height = SIZE
    block_frames = 2
    lookahead_samples = 0

    def __init__(self, sample_rate: int = 16_000, fps: int = 25) -> None:
        self.spf = sample_rate // fps

    def make(self, audio: np.ndarray, speech: np.ndarray, start_frame: int) -> np.ndarray:
        return np.stack([draw(audio[j * self.spf : (j + 1) * self.spf]) for j in range(len(speech))])

    def expected_block_s(self) -> float | None:
        return None

    def keep_up_offer(self, block_s: float) -> dict:
        return {}

    def close(self) -> None:
        pass


def standin_session():
    from liveavatar.live.session import Session

    return Session(StandinMaker(), engine="stand-in")


class StandinRun:
    """The session paced in real time on a thread, one viewer at a time (as the server's LiveRun)."""

    def __init__(self, run_id: str, session) -> None:
        self.id, self.session = run_id, session
        self._viewer = None
        self._idle_since: float | None = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._pace, daemon=True).start()

    def attach(self, viewer) -> None:
        with self._lock:
            self._viewer, self._idle_since = viewer, None

    def detach(self, viewer) -> None:
        with self._lock:
            if self._viewer is viewer:
                self._viewer, self._idle_since = None, time.monotonic()

    def view(self) -> dict:
        return {"id": self.id, "object": "session", "connected": self._viewer is not None, "width": self.session.width,
                "height": self.session.height, "fps": self.session.fps, "sample_rate": self.session.sample_rate}

    def push_audio(self, pcm: np.ndarray) -> None:
        self.session.push_audio(pcm)

    def end_of_speech(self) -> None:
        self.session.end_of_speech()

    def clear(self) -> float:
        return self.session.clear()

    def idle_for(self) -> float:
        since = self._idle_since
        return 0.0 if since is None else time.monotonic() - since

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            viewer, self._viewer = self._viewer, None
            self.session.close()
        if viewer is not None:
            viewer.ended("closed")

    def _pace(self) -> None:
        t0, made = time.monotonic(), 0
        while not self._stop.wait(max(0.0, t0 + made / self.session.fps - time.monotonic())):
            with self._lock:
                if self.session.closed:
                    return
                block = self.session.next_block()
                events = self.session.poll_events()
                viewer = self._viewer
            made += len(block.frames)
            if viewer is not None:
                for event in events:
                    viewer.event(event)
                viewer.block(block)


class StandinRegistry:
    """Runs by id; one without a viewer for ``idle_s`` is closed (checked every 50 ms)."""

    def __init__(self, idle_s: float = 30.0) -> None:
        self.idle_s = idle_s
        self.runs: dict[str, StandinRun] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._reap, daemon=True).start()

    def add(self, run_id: str) -> StandinRun:
        self.runs[run_id] = StandinRun(run_id, standin_session())
        return self.runs[run_id]

    def get(self, run_id: str) -> StandinRun | None:
        return self.runs.get(run_id)

    def delete(self, run_id: str) -> bool:
        run = self.runs.pop(run_id, None)
        if run is not None:
            run.close()
        return run is not None

    def _reap(self) -> None:
        while not self._stop.wait(0.05):
            for run_id, run in list(self.runs.items()):
                if run.idle_for() > self.idle_s:
                    self.delete(run_id)

    def stop(self) -> None:
        self._stop.set()
        for run_id in list(self.runs):
            self.delete(run_id)
