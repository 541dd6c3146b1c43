"""The out-of-memory ladder: when the GPU runs out mid-video, step down and continue, losing nothing.

On ``torch.OutOfMemoryError`` (``torch.cuda.OutOfMemoryError`` is the same class) anywhere in a
block's denoising or decoding, the ladder drops what the failed call held, takes the planner's
next mode that keeps the video's shape (fp8 weights, fp8 KV, KV streamed from host memory, the
text encoder off the GPU, tiled decode passes), converts the step caches to that mode's form
with their contents, restores the decoder to the last block boundary, says in one line what
changed, and runs the loop again from `LoopState` as it was at that boundary. Frames reach the
writer only after a block is decoded, so the video stays continuous. When no rung is left it
raises what the run's `exhausted` builds (a UserError naming the command that would finish).

The ladder drives the run (runtime/run.py) through `LadderRun`: allocate caches in a form, produce
blocks from caches and a loop state, apply a mode change outside the caches, say why it gave up.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from liveavatar.engines.diffusion.runtime.caches import CacheForm
from liveavatar.engines.diffusion.runtime.loop import DenoisedBlock, LoopState, StepCaches
from liveavatar.engines.diffusion.runtime.overlap import consume_side, run_blocks

OOM = (torch.OutOfMemoryError,)


class Consumer(Protocol):
    """Turns denoised blocks into output (frames); transactional through save/restore."""

    def __call__(self, block: DenoisedBlock): ...

    def save(self): ...

    def restore(self, saved) -> None: ...


class LadderRun(Protocol):
    """What the ladder asks of the run it drives."""

    def allocate(self, form: CacheForm) -> StepCaches: ...

    def produce(self, caches: StepCaches, state: LoopState) -> Iterator[DenoisedBlock]: ...

    def step_down(self, old, new) -> str:
        """Change what the mode change touches outside the caches (weights, encoders, decoder); describe it."""
        ...

    def exhausted(self, block: int, mode) -> BaseException: ...


def free_device_memory() -> None:
    """Drop the failed call's tensors (their frames are gone once the exception is) and hand back cache."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Ladder:
    """Runs `run`'s block loop in `mode`; `later` are the rungs (planner modes) it may step down to.
    The caches are converted here; the rest of a mode change is the run's `step_down`."""

    def __init__(self, mode, later: list, run: LadderRun, notify: Callable[[str], None], ahead: bool = False) -> None:
        """``ahead``: denoise block n+1 while block n is consumed (runtime/overlap.py; CUDA)."""
        self.mode, self.later = mode, list(later)
        self.target, self.notify = run, notify
        self.ahead = ahead
        self._runner = None
        self.rungs_taken: list[str] = []
        self.live: LoopState | None = None  # the loop's state while it runs (resume records read it)

    def run(self, consume: Consumer, state: LoopState, boundary_is_live: bool = False) -> Iterator:
        """``boundary_is_live``: continue from the loop's own state after a failure (it only moves on
        when a block is done), for a DiT worker of a multi-GPU run, whose stage yields nothing until
        its last step and whose blocks leave by a send that allocates nothing on the GPU."""
        boundary = state.snapshot()
        caches: StepCaches | None = None
        live = None
        while True:
            failed = False
            blocks = None
            try:
                if caches is None:
                    caches = self.target.allocate(self.mode.kv)
                live = self.live = boundary.snapshot()
                blocks = self._runner = run_blocks(self.target.produce(caches, live), live.snapshot, self.ahead)
                for block, (after, ready) in blocks:
                    self.live = after  # the state as of this block (the loop may be one block further)
                    saved = consume.save()
                    try:
                        with consume_side(ready, block.latents):
                            out = consume(block)
                    except OOM:
                        consume.restore(saved)
                        raise
                    boundary = after
                    if out is not None:
                        yield out
                return
            except OOM:
                failed = True  # step down outside the handler: its traceback pins the failed call's tensors
            finally:
                if blocks is not None:
                    blocks.close()
            if failed:
                blocks = None
                if boundary_is_live and live is not None:
                    boundary = live.snapshot()
                free_device_memory()
                caches = self._next_rung(caches, boundary.next_task)

    def caught_up(self) -> None:
        """Called by the loop before work that reads consumed output (the clip-1 sink's motion)."""
        if self._runner is not None:
            self._runner.caught_up()

    def _next_rung(self, caches: StepCaches | None, block: int) -> StepCaches | None:
        return self.next_rung(caches, block)

    def next_rung(self, caches: StepCaches | None, block: int) -> StepCaches | None:
        """Step down one rung (converting `caches`), or raise what `exhausted` builds when none is left."""
        if not self.later:
            raise self.target.exhausted(block, self.mode)
        new = self.later.pop(0)
        what = [self.target.step_down(self.mode, new)]
        if caches is not None and new.kv != caches.form:
            caches = caches.converted(new.kv, release=True)
            free_device_memory()
            what.append(f"step caches now {new.kv.label}")
        self.notify(
            f'note: out of GPU memory at block {block}: stepped down to "{new.name}" '
            f"({'; '.join(w for w in what if w)}); continuing from block {block}"
        )
        self.rungs_taken.append(new.name)
        self.mode = new
        return caches
