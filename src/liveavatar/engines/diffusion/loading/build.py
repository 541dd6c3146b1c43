"""The DiT as a run uses it: loaded, LoRA merged, fp8 and compiled as configured.

Here (and not in the engine) so that the engine and every DiT worker (runtime/ranks.py) build it the
same way without the runtime importing the engine.
"""

from __future__ import annotations

import os

from liveavatar.config import GenerateConfig
from liveavatar.engines.diffusion.loading.layout import CheckpointLayout


def compile_enabled(device) -> bool:
    """torch.compile on CUDA unless ENABLE_COMPILE=false (upstream's switch)."""
    return device.type == "cuda" and os.environ.get("ENABLE_COMPILE", "true").lower() != "false"


def build_dit(config: GenerateConfig, layout: CheckpointLayout, device, dtype, fp8: bool | None = None):
    """The DiT with the LoRA merged (fp8 and compiled as configured): ``(dit, merge report)``.

    ``fp8`` (default: ``--fp8`` on CUDA): the memory planner's mode may ask for it too."""
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    fp8 = (bool(config.fp8) if fp8 is None else fp8) and device.type == "cuda"
    # weights go straight from the memory-mapped shards to their device and dtype (no second
    # host copy); the LoRA is merged there, each W + (alpha/r) B A formed in fp32, then cast.
    # fp8: load and merge in host memory, quantise module by module onto the GPU, so the GPU
    # never holds the bf16 weights (30 GiB at 14B)
    dit = load_dit(layout.root, device="cpu" if fp8 else device, dtype=dtype)
    merged = merge_lora(dit, layout.lora)
    if fp8:
        from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8

        quantize_linears_fp8(dit, device=device)
        dit._rope = None
    dit.fp8 = fp8
    if compile_enabled(device):
        dit.accelerate(compile=True)  # one graph per layer half: ~20 s once, then 1.6x faster blocks
    return dit, merged
