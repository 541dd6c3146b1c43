"""Selection: the first mode, fastest first, whose predicted peak fits the budget."""

from __future__ import annotations

from dataclasses import dataclass, field

from liveavatar.errors import UserError
from liveavatar.planning.memory.calibration import GIB, MARGIN
from liveavatar.planning.memory.estimate import Estimate, estimate
from liveavatar.planning.memory.modes import Mode, candidate_modes
from liveavatar.planning.memory.workload import Workload, resize


@dataclass(frozen=True)
class Choice:
    estimate: Estimate
    budget: int | None
    reason: str
    later: tuple[Mode, ...] = field(default=())  # the shape-keeping modes after it (the OOM ladder's rungs)

    @property
    def mode(self) -> Mode:
        return self.estimate.mode

    def summary(self) -> dict:
        out = self.estimate.summary()
        if self.budget is not None:
            out["budget_gib"] = round(self.budget / GIB, 2)
        return out


def fits(est: Estimate, budget: int) -> bool:
    return est.peak <= budget * (1 - MARGIN)


def needed_budget(est: Estimate) -> float:
    """The budget (bytes) under which `est` fits, allocator slack included."""
    return est.peak / (1 - MARGIN)


def choose(
    work: Workload,
    budget: int | None,
    fp8_weights: bool = False,
    size_fixed: bool = True,
    frames_fixed: bool = True,
    budget_source: str = "--gpu_memory",
) -> Choice:
    """The first mode that fits `budget` (bytes per GPU; None: no limit known), or a UserError."""
    modes = candidate_modes(work, fp8_weights, size_fixed, frames_fixed)
    estimates = [estimate(resize(work, m), m) for m in modes]
    first = estimates[0]
    if budget is None:
        return Choice(
            first,
            None,
            f"no GPU memory budget known ({budget_source}); predicted peak {first.peak / GIB:.1f} GiB",
            tuple(m for m in modes[1:] if m.keeps_shape),
        )
    for i, est in enumerate(estimates):
        if fits(est, budget):
            why = (
                "the fastest mode"
                if i == 0
                else f"{estimates[i - 1].mode.name} needs {estimates[i - 1].peak / GIB:.1f} GiB"
            )
            reason = f"{est.peak / GIB:.1f} GiB predicted of {budget / GIB:.1f} GiB ({budget_source}); {why}"
            return Choice(est, budget, reason, tuple(m for m in modes[i + 1 :] if m.keeps_shape))
    need = min(needed_budget(e) for e in estimates)
    raise UserError(
        "--gpu_memory",
        f"no memory mode fits {budget / GIB:.1f} GiB per GPU for "
        f"{work.width}x{work.height}, {work.frames_per_clip} frames per clip, {work.steps} steps "
        f"(smallest: {need / GIB:.1f} GiB)",
        f"use a GPU with at least {need / GIB:.1f} GiB free, or fewer --sample_steps",
    )
