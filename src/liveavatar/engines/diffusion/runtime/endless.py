"""The block loop's plan for a live session: clips without end, the schedule computed per block.

``LoopPlan.schedule()`` lists every block of a video; a session has no last block, so
:class:`EndlessPlan` hands the loop a sequence that computes block ``k`` when asked (constant memory)
and is as long as ``MAX_CLIPS`` clips (about 60 years at 48 frames a clip): the loop itself is
unchanged and runs as for a file, one block each time the session asks for one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from liveavatar.engines.diffusion.runtime.loop import BlockTask, LoopPlan

MAX_CLIPS = 10**9


class EndlessSchedule(Sequence):
    """``LoopPlan.schedule()`` of a plan with ``MAX_CLIPS`` clips and no cut last clip, lazily."""

    def __init__(self, plan: LoopPlan, start: int = 0, stop: int | None = None) -> None:
        self.plan = plan
        self.per_clip = plan.blocks()
        self.start = start
        self.stop = len(self.per_clip) * plan.num_clips if stop is None else stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, k):
        if isinstance(k, slice):
            start, stop, step = k.indices(len(self))
            if step != 1:
                raise ValueError("the endless schedule is read in order")
            return EndlessSchedule(self.plan, self.start + start, self.start + stop)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        index = self.start + k
        clip, i = divmod(index, len(self.per_clip))
        start, count = self.per_clip[i]
        return BlockTask(
            index, clip, start, count, clip * self.plan.latents_per_clip + start, i == len(self.per_clip) - 1
        )

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]


@dataclass(frozen=True)
class EndlessPlan(LoopPlan):
    """A LoopPlan whose clips never end (``num_clips`` is ``MAX_CLIPS``; ``last_clip_frames`` unused)."""

    def schedule(self) -> EndlessSchedule:  # type: ignore[override]
        return EndlessSchedule(self)
