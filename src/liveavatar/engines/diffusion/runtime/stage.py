"""One DiT worker's steps of the loop, in the mode its memory plan chose, with its own OOM ladder.

A worker of a multi-GPU run that runs out of GPU memory steps down alone: it takes the next
shape-keeping mode of its plan (fp8 weights, fp8 KV, KV streamed from host memory), converts its
step caches with their contents and runs the block it was in again (the loop's state is only
advanced once a block is done, and its link keeps the block's input and the clip-1 broadcasts, so
no other worker notices more than a delay). With no rung left, or when the block had already
gone to the next rank, it stops with one error naming it; the launcher stops the others and the
finished part of the video is kept.
"""

from __future__ import annotations

from typing import Callable

from liveavatar.engines.diffusion.runtime.ladder import OOM, Ladder, free_device_memory
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, Stage, StepCaches, denoise_blocks
from liveavatar.errors import UserError


def out_of_memory(label: str) -> Callable[[int, object], UserError]:
    def build(block: int, mode) -> UserError:
        return UserError("--gpu_memory", f"{label} ran out of GPU memory at block {block} even in the last memory "
                         f"mode ({mode.name})", "free memory on its GPU, use more --num_gpus_dit or a smaller --size; "
                         "the finished part is kept")
    return build


def run_stage(dit, text_ctx, job: dict, plan: LoopPlan, stage: Stage, link, mode, later, say: Callable[[str], None],
              label: str = "this worker") -> None:
    """Run `stage`'s steps of every block; the blocks leave through `link` (to the next rank)."""
    from liveavatar.engines.diffusion.runtime.modes import weights_for

    ladder = Ladder(mode, list(later), lambda old, new: weights_for(dit, new), say, out_of_memory(label))
    next_motion = link.motion(None, job["motion"])
    audio = job["audio"].to(dit.device)
    state = LoopState.start(plan.seed)
    caches: StepCaches | None = None
    while True:
        failed, blocks = False, None
        try:
            if caches is None:
                caches = StepCaches.allocate(dit, plan, stage.steps, mode=ladder.mode.kv)
            blocks = denoise_blocks(dit, text_ctx, audio, job["ref"], job["motion"], plan, next_motion, stage=stage,
                                    link=link, caches=caches, state=state)
            for block in blocks:  # the last DiT rank hands clean latents to the decode worker
                link.send(block.task, block.latents)
            return
        except OOM:
            failed = True  # step down outside the handler: its traceback pins the failed call's tensors
        finally:
            if blocks is not None:
                blocks.close()
        if failed:
            blocks = None
            # the state moves on when a block is done, just before it is sent: a block done but not
            # sent cannot be made again here
            if link.sent_through < state.next_task - 1:
                raise out_of_memory(label)(state.next_task - 1, ladder.mode)
            free_device_memory()
            caches = ladder.next_rung(caches, state.next_task)
