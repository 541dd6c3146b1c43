"""One DiT worker's steps of the loop, in the mode its memory plan chose, with its own OOM ladder.

A worker of a multi-GPU run that runs out of GPU memory steps down alone: it takes the next
shape-keeping mode of its plan (fp8 weights, fp8 KV, KV streamed from host memory), converts its
step caches with their contents and runs the block it was in again (the loop's state only moves
on once a block is done, and its link keeps the block's input and the clip-1 broadcasts, so no
other worker notices more than a delay). With no rung left it stops with one error naming it;
the launcher stops the others and the finished part of the video is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from liveavatar.engines.diffusion.runtime.ladder import Ladder
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, Stage, StepCaches, denoise_blocks
from liveavatar.errors import UserError


def out_of_memory(label: str) -> Callable[[int, object], UserError]:
    def build(block: int, mode) -> UserError:
        return UserError(
            "--gpu_memory",
            f"{label} ran out of GPU memory at block {block} even in the last memory mode ({mode.name})",
            "free memory on its GPU, use more --num_gpus_dit or a smaller --size; the finished part is kept",
        )

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
        return denoise_blocks(
            self.dit,
            self.text_ctx,
            self.audio,
            job["ref"],
            job["motion"],
            self.plan,
            self.next_motion,
            stage=self.stage,
            link=self.link,
            caches=caches,
            state=state,
        )

    def step_down(self, old, new) -> str:
        from liveavatar.engines.diffusion.runtime.modes import weights_for

        return weights_for(self.dit, new)

    def exhausted(self, block: int, mode) -> BaseException:
        return out_of_memory(self.label)(block, mode)


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


def run_stage(
    dit,
    text_ctx,
    job: dict,
    plan: LoopPlan,
    stage: Stage,
    link,
    mode,
    later,
    say: Callable[[str], None],
    label: str = "this worker",
) -> None:
    """Run `stage`'s steps of every block; the blocks leave through `link` (to the next rank)."""
    ladder = Ladder(mode, list(later), _WorkerSteps(dit, text_ctx, job, plan, stage, link, label), say)
    for _ in ladder.run(_SendOn(link), LoopState.start(plan.seed), boundary_is_live=True):
        pass
