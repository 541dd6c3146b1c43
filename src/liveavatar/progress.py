"""Progress display: a bar with ETA on a terminal, silence otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int, int], None]
"""``advance(frames_done_now, clip_index)``"""


@contextmanager
def frame_progress(total_frames: int, num_clips: int, enabled: bool | None = None) -> Iterator[Advance]:
    """Yield an ``advance`` callback; draws a rich progress bar only when stdout is a terminal."""
    if enabled is None:
        enabled = sys.stdout.isatty()
    if not enabled:
        yield lambda frames, clip: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"clip 1/{num_clips}", total=total_frames)

        def advance(frames: int, clip: int) -> None:
            bar.update(task, advance=frames, description=f"clip {min(clip + 1, num_clips)}/{num_clips}")

        yield advance
