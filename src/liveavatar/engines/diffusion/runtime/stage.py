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


class _WorkerSteps:
    """One worker's stage as the ladder drives it (ladder.LadderRun); `run_stage` runs its loop."""

    def __init__(self, dit, text_ctx, job: dict, plan: LoopPlan, stage: Stage, link, label: str) -> None:
        self.dit, self.text_ctx, self.job, self.plan, self.stage, self.link = dit, text_ctx, job, plan, stage, link
        self.label = label
        self.next_motion = link.motion(None, job["motion"])
        self.audio = job["audio"].to(dit.device)

    def allocate(self, form) -> StepCaches:
        return StepCaches.allocate(self.dit, self.plan, self.stage.steps, mode=form)

    def produce(self, caches: StepCaches, state: LoopState):
        job = self.job
        return denoise_blocks(self.dit, self.text_ctx, self.audio, job["ref"], job["motion"], self.plan,
                              self.next_motion, stage=self.stage, link=self.link, caches=caches, state=state)

    def step_down(self, old, new) -> str:
        from liveavatar.engines.diffusion.runtime.modes import weights_for

        return weights_for(self.dit, new)

    def exhausted(self, block: int, mode) -> BaseException:
        return out_of_memory(self.label)(block, mode)


def run_stage(dit, text_ctx, job: dict, plan: LoopPlan, stage: Stage, link, mode, later, say: Callable[[str], None],
              label: str = "this worker") -> None:
    """Run `stage`'s steps of every block; the blocks leave through `link` (to the next rank)."""
    steps = _WorkerSteps(dit, text_ctx, job, plan, stage, link, label)
    ladder = Ladder(mode, list(later), steps, say)
    state = LoopState.start(plan.seed)
    caches: StepCaches | None = None
    while True:
        failed, blocks = False, None
        try:
            if caches is None:
                caches = steps.allocate(ladder.mode.kv)
            blocks = steps.produce(caches, state)
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
