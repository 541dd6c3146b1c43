"""A stand-in for the WebRTC transport's tests: a BlockMaker whose mouth is easy to measure, under
the real live Session, run by the server's own runner and registry.

The stand-in draws a light face with a dark mouth whose height follows the loudness of its own
frame's audio, so any offset between the received audio and the received mouth is the transport's.
"""

from __future__ import annotations

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


def open_run(registry):
    """A run of a stand-in session in the server's registry (``live.registry.SessionRegistry``),
    paced by the server's own ``live.runner.LiveRun``."""
    from liveavatar.live.runner import LiveRun

    session = standin_session()
    info = {
        "engine": "stand-in",
        "width": session.width,
        "height": session.height,
        "fps": session.fps,
        "sample_rate": session.sample_rate,
    }
    return registry.open(lambda run_id: LiveRun(run_id, session, info))
