"""The seam between the pipeline and the engines.

Every engine yields the same thing: blocks of uint8 RGB frames shaped ``[n, H, W, 3]`` at the
plan's fps, in order, as soon as they exist. The pipeline never knows which engine runs, and the
writer never knows either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from liveavatar.config import Plan


@dataclass(frozen=True)
class Inputs:
    """The user's inputs, read and checked, in the forms every engine starts from."""

    prompt: str
    image: np.ndarray  # the portrait as uint8 RGB [H0, W0, 3], EXIF orientation applied
    audio: np.ndarray  # float32 mono in [-1, 1] at `sample_rate`
    sample_rate: int
    image_path: Path
    audio_path: Path
    transcript: str | None = None

    @property
    def audio_seconds(self) -> float:
        return len(self.audio) / self.sample_rate


Notify = Callable[[str], None]
"""How an engine tells the user something (a warning, which face it animates, ...)."""


class Engine(Protocol):
    """What the pipeline, the server and live sessions use of an engine; nothing else is probed."""

    name: str
    resume_states: dict[int, dict]
    """After (or during) ``generate``: a small JSON-able fingerprint of the engine's state at each clip
    boundary it passed, keyed by clips done. Resume records store them; a resumed run compares them."""

    def generate(
        self, inputs: Inputs, plan: Plan, notify: Notify, start_clip: int = 0, memory: object | None = None
    ) -> Iterator[np.ndarray]:
        """Yield uint8 RGB frame blocks ``[n, plan.height, plan.width, 3]``.

        Exactly ``plan.num_frames`` frames in all (from clip ``start_clip`` on: the frames of the
        clips before it are not yielded, but the engine's state is as if they had been); clip ``k``
        contributes ``plan.clip_frame_counts()[k]`` of them. Raise :class:`~liveavatar.errors.UserError`
        for problems with the inputs (no face, ...). ``memory``: the run's memory choice from
        ``pipeline.prepare`` (planning/fit.py's MemoryFit; None for engines the planner does not plan).
        """
        ...

    def open_session(self, portrait: SessionInputs, plan: Plan, notify: Notify, options=None) -> LiveSession:
        """A live session over this engine: audio pushed as it arrives, frames as they are made.

        ``options``: ``engines.session.SessionOptions`` (sample rate, queue bounds); defaults when None.
        The session (``engines.session.Session``) is shared; the engine supplies its block maker."""
        ...


def remember_state(states: dict[int, dict], clips: int, state: dict, keep: int = 2) -> None:
    """An engine's fingerprint after ``clips`` clips, keeping the last few (the pipeline reads them, for
    its resume records, at its segment ends, a block or two after the engine passed there)."""
    states[clips] = state
    for old in sorted(states)[:-keep]:
        del states[old]


@dataclass(frozen=True)
class SessionInputs:
    """What a live session starts from: the portrait and the prompt (the speech comes later, pushed)."""

    prompt: str
    image: np.ndarray  # uint8 RGB [H0, W0, 3], EXIF orientation applied
    image_path: Path | None = None


@dataclass(frozen=True)
class LiveBlock:
    """Frames a live session made, with the audio they show (the same span of the one timeline)."""

    frames: np.ndarray  # uint8 RGB [n, H, W, 3]
    audio: np.ndarray  # float32 mono at the session's sample rate, exactly n / fps seconds of it
    start_frame: int  # index of frames[0] on the session's timeline (0 = the session's first frame)
    speaking: bool  # False: the avatar listens (idle) in this block


class LiveSession(Protocol):
    """One portrait, one continuous timeline at ``fps``; the transport moves audio in and frames out.

    ``push_audio`` queues speech (float32 or int16 mono at ``sample_rate``, or at another rate, then
    resampled); ``next_block`` makes the next ``block_frames`` frames now (speech that has arrived plus
    ``lookahead_ms``, or listening frames when no speech is ready, so the timeline never stops; it never
    waits: the transport calls it at the timeline's pace); ``clear`` drops queued speech (barge-in);
    ``poll_events`` returns what happened since the last poll (``session.started``, ``speech.started``,
    ``playback.finished {position_s, interrupted}``, ``lagging``, ``error {code, message}``) for the
    transport to forward; ``close`` frees the engine's resources.
    """

    fps: int
    sample_rate: int
    width: int
    height: int
    lookahead_ms: float
    block_frames: int
    seconds_shown: float  # video made so far (frames / fps)
    speech_seconds_played: float  # speech that has been on the timeline, all utterances

    def push_audio(self, pcm: np.ndarray, sample_rate: int | None = None) -> None: ...

    def poll_events(self) -> list[dict]: ...

    def end_of_speech(self) -> None: ...

    def clear(self) -> float:
        """Drop queued speech; returns the seconds of the current utterance already shown."""
        ...

    def next_block(self) -> LiveBlock:
        """The next block on the timeline (speech if there is enough of it, else idle frames)."""
        ...

    def close(self) -> None: ...
