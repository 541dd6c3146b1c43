"""Per-worker memory of a K-worker run, from the memory planner (planning/memory/): one estimator.

Printed as ``note:`` lines and checked against the free memory on each GPU before the worker
allocates its caches.
"""

from __future__ import annotations

from liveavatar.engines.diffusion.latents import VAE_STRIDE
from liveavatar.errors import UserError
from liveavatar.planning.memory import GIB, Estimate, Workload, default_mode, dit_weight_bytes, estimate, fits


def worker_estimate(dit_config, plan, steps: int, bytes_per_value: int, mode=None, holds_vae: bool = False) -> Estimate:
    """What one DiT worker holds in `mode` (default: the weights as configured, resident caches):
    the weights, ``steps`` KV rings, the sink and one call's activations. A bool `mode` is the old
    ``fp8`` flag (fp8 weights or not)."""
    if mode is None or isinstance(mode, bool):
        mode = default_mode(bool(mode))
    h, w = plan.latent_hw
    work = Workload(dit_config, h * VAE_STRIDE, w * VAE_STRIDE, plan.frames_per_clip, steps, value_bytes=bytes_per_value,
                    holds_vae=holds_vae, encodes=holds_vae)
    return estimate(work, mode)


def weight_bytes(dit_config, bytes_per_value: int, fp8: bool) -> int:
    return dit_weight_bytes(dit_config, bytes_per_value, fp8)[0]


def require_room(est: Estimate, free_bytes: int, what: str) -> None:
    """UserError with the ways out when a worker's predicted peak exceeds its GPU's free memory."""
    if fits(est, free_bytes):
        return
    raise UserError("--num_gpus_dit", f"{what} needs {est.peak / GIB:.1f} GiB on its GPU (planner) but "
                    f"{free_bytes / GIB:.1f} GiB are free",
                    "use --fp8, more --num_gpus_dit, fewer --sample_steps, a smaller --size or --infer_frames")


def worker_notes(config, plan, roles, memory=None) -> list[str]:
    """One ``note:`` line per DiT worker: its steps, its memory mode and the memory they need (planner).

    `memory`: the run's RunMemory (each worker's planned mode); without it, the weights as configured."""
    import torch

    from liveavatar.engines.diffusion.loading.checkpoint import read_config
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.engines.diffusion.runtime.loop import split_steps

    on_gpu = torch.cuda.is_available()
    size = 2 if on_gpu else 4
    dit_config = read_config(resolve_layout(config.ckpt_dir, config.lora_path_dmd).root)
    lines = []
    for rank, stage in enumerate(split_steps(plan.sample_steps, roles.num_dit)):
        mode = memory.for_rank(rank).choice.mode if memory is not None else bool(config.fp8) and on_gpu
        est = worker_estimate(dit_config, plan, len(stage.steps), size, mode)
        c = est.components
        lines.append(f"note: {roles.describe(rank, plan.sample_steps)}: {est.mode.name}, about {_size(est.peak)} "
                     f"(weights {_size(c['dit_weights'])} + {len(stage.steps)} step caches {_size(c['kv_rings'])} + "
                     f"sink {_size(c['sink'])} + activations; planner)")
    return lines


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"
