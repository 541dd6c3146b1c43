"""The planner for one resolved run: the DiT's shapes from the checkpoint, the budget, the choice."""

from __future__ import annotations

from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.planning.memory.calibration import GIB
from liveavatar.planning.memory.gpus import cuda_budget
from liveavatar.planning.memory.select import Choice, choose
from liveavatar.planning.memory.workload import workload_for


def read_dit_config(ckpt_dir) -> DiTConfig | None:
    """The DiT's shapes from ``ckpt_dir/config.json`` (all the dry run needs), or None when absent."""
    from pathlib import Path

    from liveavatar.engines.diffusion.loading.layout import DIT_CONFIG, read_config

    return read_config(Path(ckpt_dir)) if (Path(ckpt_dir) / DIT_CONFIG).is_file() else None


def plan_for_run(config, plan, dit: DiTConfig, explicit: tuple[str, ...] = ("size", "infer_frames")) -> Choice:
    """The memory choice for a resolved GenerateConfig and its Plan; `explicit` names the shape
    flags the user gave (size, infer_frames), which the guide's rungs never override."""
    budget = int(config.gpu_memory * GIB) if config.gpu_memory is not None else cuda_budget()
    source = "--gpu_memory" if config.gpu_memory is not None else "free CUDA memory" if budget else "no CUDA, no --gpu_memory"
    workers = max(1, config.num_gpus_dit)
    work = workload_for(config, plan, dit, steps=-(-plan.sample_steps // workers))
    return choose(work, budget, fp8_weights=bool(config.fp8), size_fixed="size" in explicit,
                  frames_fixed="infer_frames" in explicit, budget_source=source)
