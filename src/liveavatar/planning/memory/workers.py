"""Per-worker memory plans: every rank of a run planned for its own GPU.

A multi-GPU run (``--num_gpus_dit K``, timestep-forcing pipeline parallelism) needs no unsharding:
a DiT worker holds the DiT weights, only ITS steps' KV rings, the sink, the text context, the
audio features and one call's activations; the decoding rank (a decode worker, or the last DiT
rank) also holds the VAE and its decode pass and runs the encoders (it is the process that
encodes the conditions and broadcasts them). Each worker takes the fastest mode that fits its
own budget (``--gpu_memory`` per GPU, or what CUDA reports free on each). One GPU is the same
plan with one entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from liveavatar.errors import UserError
from liveavatar.planning.memory.calibration import GIB
from liveavatar.planning.memory.estimate import estimate
from liveavatar.planning.memory.modes import Mode, candidate_modes
from liveavatar.planning.memory.select import Choice, choose, needed_budget
from liveavatar.planning.memory.workload import Workload, resize

DIT, DIT_DECODE, DECODE, SINGLE = "dit", "dit+decode", "decode", "single"


@dataclass(frozen=True)
class WorkerShare:
    """What one rank does: its role, its denoising steps and the GPU it runs on."""

    rank: int
    role: str  # DIT, DIT_DECODE (the last DiT rank decodes), DECODE (a decode worker) or SINGLE (one GPU)
    steps: tuple[int, ...]
    gpu: int
    label: str  # "worker 2 (DiT step 2)", as the run's messages name it

    @property
    def decodes(self) -> bool:
        return self.role != DIT


def worker_shares(
    num_dit: int, decode_worker: bool, sample_steps: int, torchrun: bool = False
) -> tuple[WorkerShare, ...]:
    """The ranks of a run with `num_dit` DiT workers (1: one GPU does everything)."""
    if num_dit <= 1 and not decode_worker:
        return (WorkerShare(0, SINGLE, tuple(range(sample_steps)), 0, "the GPU"),)
    from liveavatar.engines.diffusion.runtime.loop import split_steps
    from liveavatar.engines.diffusion.runtime.ranks import Roles

    roles = Roles(num_dit, decode_worker)
    stages = split_steps(sample_steps, num_dit)
    shares = []
    for rank in range(roles.world):
        dit = rank < num_dit
        role = DIT if rank != roles.decoder else DIT_DECODE if dit else DECODE
        shares.append(
            WorkerShare(
                rank,
                role,
                stages[rank].steps if dit else (),
                roles.gpu(rank, torchrun),
                roles.describe(rank, sample_steps),
            )
        )
    return tuple(shares)


def share_workload(base: Workload, share: WorkerShare) -> Workload:
    """`base` (the whole run on one GPU) cut to what `share` holds."""
    return dataclasses.replace(
        base,
        steps=max(1, len(share.steps)),
        holds_dit=share.role != DECODE,
        holds_vae=share.decodes,
        encodes=share.decodes,
        encoders_resident=base.encoders_resident and share.decodes,
    )


@dataclass(frozen=True)
class WorkerPlan:
    share: WorkerShare
    choice: Choice

    def summary(self) -> dict:
        s = self.share
        return {"rank": s.rank, "role": s.role, "steps": list(s.steps), "gpu": s.gpu, **self.choice.summary()}


@dataclass(frozen=True)
class RunMemory:
    """The plan of every worker; as a Choice it is this process's (the decoding rank's) plan."""

    workers: tuple[WorkerPlan, ...]

    @property
    def local(self) -> WorkerPlan:
        return next(w for w in self.workers if w.share.decodes)

    def for_rank(self, rank: int) -> WorkerPlan:
        return next(w for w in self.workers if w.share.rank == rank)

    # the Choice of this process, for the engine that runs here
    @property
    def estimate(self):
        return self.local.choice.estimate

    @property
    def mode(self) -> Mode:
        return self.local.choice.mode

    @property
    def later(self) -> tuple[Mode, ...]:
        return self.local.choice.later

    @property
    def budget(self) -> int | None:
        return self.local.choice.budget

    @property
    def reason(self) -> str:
        if len(self.workers) == 1:
            return self.local.choice.reason
        return "; ".join(
            f"{w.share.label} {w.choice.mode.name}, {w.choice.estimate.peak / GIB:.1f} GiB"
            + (f" of {w.choice.budget / GIB:.1f}" if w.choice.budget is not None else "")
            for w in self.workers
        )

    def notes(self) -> list[str]:
        """The ``note:`` lines a run prints about its memory plan (none when no budget is known)."""
        if len(self.workers) > 1:
            return [f"note: memory plan per worker: {self.reason}"]
        return [f"note: memory mode {self.mode.name}: {self.reason}"] if self.budget is not None else []

    def summary(self) -> dict:
        """This process's plan (as on one GPU) and every worker's under ``workers``."""
        return {**self.local.choice.summary(), "workers": [w.summary() for w in self.workers]}


def plan_workers(
    base: Workload,
    shares: tuple[WorkerShare, ...],
    budgets: list[int | None],
    fp8_weights: bool = False,
    size_fixed: bool = True,
    frames_fixed: bool = True,
    budget_source: str = "--gpu_memory",
) -> RunMemory:
    """Each worker's fastest fitting mode under its own budget (`budgets[i]` for `shares[i]`).

    One GPU: exactly `choose` (the guide's smaller shapes included). Several: every worker keeps
    the video's shape unless no shape-keeping mode fits some worker; then the guide's smaller
    shapes are tried for all of them together (the workers must make the same video)."""
    if len(shares) == 1:
        return RunMemory(
            (WorkerPlan(shares[0], choose(base, budgets[0], fp8_weights, size_fixed, frames_fixed, budget_source)),)
        )
    shapes = [None] + [m for m in candidate_modes(base, fp8_weights, size_fixed, frames_fixed) if not m.keeps_shape]
    for shape in shapes:
        work = base if shape is None else resize(base, shape)
        plans = []
        for share, budget in zip(shares, budgets):
            try:
                choice = choose(share_workload(work, share), budget, fp8_weights, budget_source=budget_source)
            except UserError:
                break
            plans.append(WorkerPlan(share, choice if shape is None else _with_shape(choice, shape)))
        else:
            return RunMemory(tuple(plans))
    raise _refusal(base, shares, budgets, fp8_weights, budget_source)


def _with_shape(choice: Choice, shape: Mode) -> Choice:
    mode = dataclasses.replace(
        choice.mode, name=f"{choice.mode.name}, {shape.name}", size=shape.size, infer_frames=shape.infer_frames
    )
    return dataclasses.replace(choice, estimate=dataclasses.replace(choice.estimate, mode=mode))


def _refusal(base: Workload, shares, budgets, fp8_weights: bool, source: str) -> UserError:
    """One line naming the first worker that fits in no mode and the budget it would need."""
    for share, budget in zip(shares, budgets):
        work = share_workload(base, share)
        smallest = min(needed_budget(estimate(work, m)) for m in candidate_modes(work, fp8_weights))
        if budget is not None and smallest > budget:
            return UserError(
                "--gpu_memory",
                f"{share.label} on GPU {share.gpu} fits no memory mode in "
                f"{budget / GIB:.1f} GiB ({source}) for {base.width}x{base.height}, {base.frames_per_clip} "
                f"frames per clip: it needs {smallest / GIB:.1f} GiB",
                f"give that GPU at least {smallest / GIB:.1f} GiB, or use more --num_gpus_dit, "
                "fewer --sample_steps or a smaller --size",
            )
    return UserError("--gpu_memory", "no memory plan fits every worker", "use larger GPUs or more --num_gpus_dit")
