"""The seam between the pipeline and the engines.

Every engine yields the same thing: blocks of uint8 RGB frames shaped ``[n, H, W, 3]`` at the
plan's fps, in order, as soon as they exist. The pipeline never knows which engine runs, and the
writer never knows either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

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
    name: str

    def generate(self, inputs: Inputs, plan: Plan, notify: Notify) -> Iterator[np.ndarray]:
        """Yield uint8 RGB frame blocks ``[n, plan.height, plan.width, 3]``.

        Exactly ``plan.num_frames`` frames in all; clip ``k`` contributes
        ``plan.clip_frame_counts()[k]`` of them. Raise :class:`~liveavatar.errors.UserError`
        for problems with the inputs (no face, ...).
        """
        ...
