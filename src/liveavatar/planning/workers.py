"""Per-worker memory of a K-worker run, from the memory planner (planning/memory.py): one estimator.

Printed as ``note:`` lines, and each worker checks its need against the free memory on its GPU
before it allocates its caches. The runtime gets both through the run's MemoryFit (planning/fit.py):
it never imports the planner.
"""

from __future__ import annotations

import math

from liveavatar.planning.memory import GIB, MARGIN, MODES, Estimate, Workload, dit_weight_bytes, estimate


def worker_estimate(dit_config, plan, steps: int, bytes_per_value: int, fp8: bool = False,
                    holds_vae: bool = False) -> Estimate:
    """What one DiT worker holds: the weights, ``steps`` KV rings, the sink and one call's activations."""
    h, w = plan.latent_hw
    work = Workload(dit_config, h * 8, w * 8, plan.frames_per_clip, steps, value_bytes=bytes_per_value,
                    holds_vae=holds_vae)
    return estimate(work, MODES[1] if fp8 else MODES[0])


def weight_bytes(dit_config, bytes_per_value: int, fp8: bool) -> int:
    return dit_weight_bytes(dit_config, bytes_per_value, fp8)[0]


def worker_notes(config, plan, roles) -> list[str]:
    """One ``note:`` line per DiT worker: its steps and the memory they need (planner)."""
    import torch

    from liveavatar.engines.diffusion.loading.checkpoint import read_config
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.engines.diffusion.runtime.loop import split_steps

    on_gpu = torch.cuda.is_available()
    size = 2 if on_gpu else 4
    dit_config = read_config(resolve_layout(config.ckpt_dir, config.lora_path_dmd).root)
    lines = []
    for rank, stage in enumerate(split_steps(plan.sample_steps, roles.num_dit)):
        est = worker_estimate(dit_config, plan, len(stage.steps), size, bool(config.fp8) and on_gpu)
        c = est.components
        lines.append(f"note: {roles.describe(rank, plan.sample_steps)}: about {_size(est.peak)} (weights "
                     f"{_size(c['dit_weights'])} + {len(stage.steps)} step caches {_size(c['kv_rings'])} + sink "
                     f"{_size(c['sink'])} + activations; planner)")
    return lines


def worker_needs(config, plan, roles) -> list[tuple[int, int]]:
    """``(predicted peak, free bytes it needs)`` of each DiT worker's GPU, by rank; [] without CUDA."""
    import torch

    from liveavatar.engines.diffusion.loading.checkpoint import read_config
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.engines.diffusion.runtime.loop import split_steps

    if not torch.cuda.is_available():
        return []
    dit_config = read_config(resolve_layout(config.ckpt_dir, config.lora_path_dmd).root)
    peaks = [worker_estimate(dit_config, plan, len(stage.steps), 2, bool(config.fp8)).peak
             for stage in split_steps(plan.sample_steps, roles.num_dit)]
    return [(peak, math.ceil(peak / (1 - MARGIN))) for peak in peaks]


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"
