"""One DiT worker's steps of the loop, in the mode its memory plan chose, with its own OOM ladder.

A worker of a multi-GPU run that runs out of GPU memory steps down alone: it takes the next
shape-keeping mode of its plan (fp8 weights, fp8 KV, KV streamed from host memory), converts its
step caches with their contents and runs the block it was in again (the loop's state only moves
on once a block is done, and its link keeps the block's input and the clip-1 broadcasts, so no
other worker notices more than a delay). With no rung left it stops with one error naming it;
the launcher stops the others and the finished part of the video is kept.
"""

from __future__ import annotations

from typing import Callable

from liveavatar.engines.diffusion.runtime.ladder import Ladder
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, Stage, StepCaches, denoise_blocks
from liveavatar.errors import UserError


def out_of_memory(label: str) -> Callable[[int, object], UserError]:
    def build(block: int, mode) -> UserError:
        return UserError("--gpu_memory", f"{label} ran out of GPU memory at block {block} even in the last memory "
                         f"mode ({mode.name})", "free memory on its GPU, use more --num_gpus_dit or a smaller --size; "
                         "the finished part is kept")
    return build


class _SendOn:
    """The ladder's consumer on the last DiT rank: each clean block goes to the decode worker."""

    def __init__(self, link) -> None:
        self.link = link

    def __call__(self, block) -> None:
        self.link.send(block.task, block.latents)

    def save(self) -> None:
        return None

    def restore(self, saved) -> None:
        pass


def run_stage(dit, text_ctx, job: dict, plan: LoopPlan, stage: Stage, link, mode, later, say: Callable[[str], None],
              label: str = "this worker") -> None:
    """Run `stage`'s steps of every block; the blocks leave through `link` (to the next rank)."""
    from liveavatar.engines.diffusion.runtime.modes import weights_for

    ladder = Ladder(mode, list(later), lambda old, new: weights_for(dit, new), say, out_of_memory(label))
    next_motion = link.motion(None, job["motion"])
    audio = job["audio"].to(dit.device)
    for _ in ladder.run(
            lambda form: StepCaches.allocate(dit, plan, stage.steps, mode=form),
            lambda caches, state: denoise_blocks(dit, text_ctx, audio, job["ref"], job["motion"], plan, next_motion,
                                                 stage=stage, link=link, caches=caches, state=state),
            _SendOn(link), LoopState.start(plan.seed), boundary_is_live=True):
        pass
