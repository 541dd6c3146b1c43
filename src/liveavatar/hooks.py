"""How a front-end other than the CLI drives `pipeline.run`: a resident engine, progress, stop.

The server (``liveavatar serve``) keeps one engine built across runs, shows progress per block
and cancels between blocks; the CLI passes none of these. Kept apart from the pipeline so the
pipeline's own code stays the one way a video is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liveavatar.engines.base import Engine


@dataclass(frozen=True)
class BlockDone:
    """Told after each block of frames is in the file."""

    frames_done: int
    frames_total: int
    clip: int  # 0-based clip the last written frame belongs to
    num_clips: int
    growing: Path  # the fragmented MP4 being written: a playable prefix of the video so far


@dataclass(frozen=True)
class Hooks:
    """All optional. ``engine``: already built (its name must be the run's engine)."""

    engine: Engine | None = None
    on_block: Callable[[BlockDone], None] | None = None
    should_stop: Callable[[], bool] | None = None


class Stopped(Exception):
    """``should_stop()`` said so between two blocks; what was made is kept as the partial video."""
