"""The diffusion engine's memory for one run, from the planner: the one place the pipeline asks it.

``fit_memory`` takes the planner's choice for a run's shapes (planning/memory.py, called through its
public functions) and, when the choice is one of the guide's rungs, the smaller config and plan it
asks for. The result, a :class:`MemoryFit`, is all the engine learns of the planner: the mode it
starts in, the rungs its out-of-memory ladder may take, the command it names when none is left, and
(K > 1 workers) every worker's plan. The engine never imports the planner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from liveavatar.config import GenerateConfig, Plan
from liveavatar.engines.base import Inputs
from liveavatar.planning.memory import (
    MARGIN,
    Mode,
    RunMemory,
    default_mode,
    finish_command,
    modes_after,
    plan_for_run,
    read_dit_config,
)
from liveavatar.planning.plan import make_plan

UNPLANNED_FINISH = "a smaller --size"


@dataclass(frozen=True)
class MemoryFit:
    """What the diffusion engine takes from the planner for one run."""

    mode: Mode
    later: tuple[Mode, ...]  # the shape-keeping modes after it: the out-of-memory ladder's rungs
    finish: str = UNPLANNED_FINISH  # the command that would make the whole video in less memory
    choice: RunMemory | None = None  # the planner's answer (every worker's plan); None: not planned
    # whether the decode of block n may run beside the DiT work of block n+1 (runtime/overlap.py)
    overlap_fits: bool = True

    def summary(self) -> dict | None:
        return self.choice.summary() if self.choice is not None else None


def unplanned(fp8_weights: bool = False) -> MemoryFit:
    """No estimate (no shapes yet: a resident engine before its first run, tests): the fastest mode
    the weights allow, every later mode as a rung."""
    first = default_mode(fp8_weights)
    return MemoryFit(first, modes_after(first))


def from_choice(choice: RunMemory, config: GenerateConfig, plan: Plan) -> MemoryFit:
    return MemoryFit(
        choice.mode, tuple(choice.later), finish_command(config, plan.width, plan.height), choice, overlap_fits(choice)
    )


def overlap_fits(choice) -> bool:
    """Whether the decode may run beside the DiT work within the memory plan. The planner's loop
    phase holds the larger of the DiT's activations and the decode's working set, one after the
    other; side by side they add up. No budget known: yes."""
    if choice is None or choice.budget is None:
        return True
    est = choice.estimate
    extra = min(est.components["dit_activations"], est.components["vae_decode"])
    return est.phases["loop"] + extra <= choice.budget * (1 - MARGIN)


def fit_memory(
    asked: GenerateConfig,
    config: GenerateConfig,
    inputs: Inputs,
    plan: Plan,
    engine_name: str,
    notify: Callable[[str], None],
) -> tuple[GenerateConfig, Plan, MemoryFit | None]:
    """The memory planner's choice for the diffusion engine's shapes (None for other engines),
    with the config and plan a guide rung (smaller size, fewer frames) changes before the first frame.

    The shapes come from the checkpoint's config.json alone (a folder holding just that file is
    enough for a dry run); without one, the diffusion engine plans for the released 14B model.
    Flags the user gave (``asked``, before resolve) are never overridden.
    """
    import importlib.util

    from liveavatar.engines.diffusion.loading.layout import resolve_layout

    # the planner is about the diffusion engine's GPU memory: a preview run is never reshaped by it
    if engine_name != "diffusion" or importlib.util.find_spec("torch") is None:
        return config, plan, None
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    dit = read_dit_config(resolve_layout(config.ckpt_dir, config.lora_path_dmd).root)
    explicit = tuple(n for n in ("size", "infer_frames") if getattr(asked, n) is not None)
    choice = plan_for_run(config, plan, dit or DiTConfig.wan_s2v_14b(), explicit)
    if not choice.mode.keeps_shape:
        config = dataclasses.replace(
            config, size=choice.mode.size or config.size, infer_frames=choice.mode.infer_frames or config.infer_frames
        )
        plan = make_plan(config, inputs, engine_name)
        notify(f"note: the video shrinks to fit the GPU: {choice.mode.name}")
    for line in choice.notes():
        notify(line)
    return config, plan, from_choice(choice, config, plan)
