"""Per-worker memory of a K-worker run: the DiT weights plus the caches of that worker's steps.

An estimate from shapes (engines/diffusion/memory.cache_budget), printed as ``note:`` lines and
checked against the free memory on each GPU before the worker allocates its caches.
"""

from __future__ import annotations

from liveavatar.engines.diffusion.memory import GIB, WORKING_MARGIN, CacheBudget, cache_budget


def worker_budget(dit_config, plan, steps: int, bytes_per_value: int) -> CacheBudget:
    """The caches one worker holds: ``steps`` KV rings and the shared sink."""
    from liveavatar.engines.diffusion.runtime.loop import SINK_TOKENS_PER_FRAME

    return cache_budget(dit_config.num_layers, dit_config.dim, plan.latent_hw, plan.latents_per_clip, steps,
                        SINK_TOKENS_PER_FRAME, bytes_per_value)


def weight_bytes(dit_config, bytes_per_value: int, fp8: bool) -> int:
    """The DiT's weights (built on the meta device to count them); fp8 stores linear weights in 1 byte."""
    import torch

    from liveavatar.engines.diffusion.dit import CausalS2VDiT

    model = CausalS2VDiT(dit_config, device="meta")
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    total = sum(p.numel() for p in model.parameters())
    return (total - linear) * bytes_per_value + linear * (1 if fp8 else bytes_per_value)


def worker_notes(config, plan, roles) -> list[str]:
    """One ``note:`` line per DiT worker: its steps and the memory they need (estimate)."""
    import torch

    from liveavatar.engines.diffusion.checkpoint import read_config
    from liveavatar.engines.diffusion.layout import resolve_layout
    from liveavatar.engines.diffusion.runtime.loop import split_steps

    on_gpu = torch.cuda.is_available()
    size = 2 if on_gpu else 4
    dit_config = read_config(resolve_layout(config.ckpt_dir, config.lora_path_dmd).root)
    weights = weight_bytes(dit_config, size, bool(config.fp8) and on_gpu)
    lines = []
    for rank, stage in enumerate(split_steps(plan.sample_steps, roles.num_dit)):
        budget = worker_budget(dit_config, plan, len(stage.steps), size)
        need = weights + budget.total + (WORKING_MARGIN if on_gpu else 0)
        room = f" + working room {_size(WORKING_MARGIN)}" if on_gpu else ""
        lines.append(f"note: {roles.describe(rank, plan.sample_steps)}: about {_size(need)} (weights {_size(weights)} + "
                     f"{len(stage.steps)} step caches x {_size(budget.ring_bytes_per_step)} + sink {_size(budget.sink_bytes)}{room}; estimate)")
    return lines


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"
