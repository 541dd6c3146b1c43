"""The planner for one resolved run: the DiT's shapes from the checkpoint, each GPU's budget, the
plan of every worker."""

from __future__ import annotations

from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.errors import UserError
from liveavatar.planning.memory.calibration import GIB
from liveavatar.planning.memory.gpus import cuda_budgets
from liveavatar.planning.memory.workers import RunMemory, WorkerShare, plan_workers, worker_shares
from liveavatar.planning.memory.workload import workload_for


def read_dit_config(ckpt_dir) -> DiTConfig | None:
    """The DiT's shapes from ``ckpt_dir/config.json`` (all the dry run needs), or None when absent."""
    from pathlib import Path

    from liveavatar.engines.diffusion.loading.layout import DIT_CONFIG, read_config

    return read_config(Path(ckpt_dir)) if (Path(ckpt_dir) / DIT_CONFIG).is_file() else None


def given_budgets_gib(value) -> tuple[float, ...] | None:
    """``--gpu_memory`` as a tuple of GiB (a single number from code is every GPU's)."""
    if value is None:
        return None
    return tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),)


def run_shares(config, sample_steps: int, gpus_visible: int) -> tuple[WorkerShare, ...]:
    """The ranks the run will have: ``--num_gpus_dit`` DiT workers and maybe a decode worker
    (torchrun's world size says; else ``--enable_vae_parallel``, or a GPU left over)."""
    from liveavatar.engines.diffusion.runtime.ranks import roles_for, torchrun_env

    k = max(1, config.num_gpus_dit)
    launched = torchrun_env() if k > 1 else None
    if launched is not None:
        return worker_shares(k, launched[1] == k + 1, sample_steps, torchrun=True)
    decode_worker = roles_for(k, config.enable_vae_parallel, gpus_visible).decode_worker if k > 1 else False
    return worker_shares(k, decode_worker, sample_steps)


def budgets_for(config, shares: tuple[WorkerShare, ...], free: list[int]) -> tuple[list[int | None], str]:
    """Each share's budget in bytes (``--gpu_memory`` per GPU, else CUDA's free memory on its GPU) and
    where the figures come from."""
    given = given_budgets_gib(config.gpu_memory)
    if given is not None:
        if len(given) > 1 and max(s.gpu for s in shares) >= len(given):
            raise UserError(
                "--gpu_memory",
                f"{len(given)} budgets given for {max(s.gpu for s in shares) + 1} GPUs",
                "give one number for every GPU, or one per GPU in device order",
            )
        return [int((given[s.gpu] if len(given) > 1 else given[0]) * GIB) for s in shares], "--gpu_memory"
    if not free:
        return [None] * len(shares), "no CUDA, no --gpu_memory"
    return [free[s.gpu] if s.gpu < len(free) else None for s in shares], "free CUDA memory"


def plan_for_run(config, plan, dit: DiTConfig, explicit: tuple[str, ...] = ("size", "infer_frames")) -> RunMemory:
    """The memory plan of every worker for a resolved GenerateConfig and its Plan; `explicit` names
    the shape flags the user gave (size, infer_frames), which the guide's rungs never override."""
    free = cuda_budgets() if config.gpu_memory is None else []
    shares = run_shares(config, plan.sample_steps, len(free))
    budgets, source = budgets_for(config, shares, free)
    return plan_workers(
        workload_for(config, plan, dit),
        shares,
        budgets,
        fp8_weights=bool(config.fp8),
        size_fixed="size" in explicit,
        frames_fixed="infer_frames" in explicit,
        budget_source=source,
    )
