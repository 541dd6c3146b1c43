"""One estimator per component of a GPU's memory, in bytes, from shapes alone.

Parameter counts come from the real modules built on the meta device (exact, nothing allocated).
Each function takes the Workload (one GPU's share) and the Mode; none of them allocates.
"""

from __future__ import annotations

import dataclasses
import functools

from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.engines.diffusion.runtime.caches import bytes_per_value
from liveavatar.planning.memory.calibration import (
    ACT_VALUES_PER_BLOCK_TOKEN_DIM,
    ACT_VALUES_PER_WINDOW_TOKEN_DIM,
    DECODE_BYTES_PER_PIXEL_FRAME,
    WAV2VEC2_LARGE_PARAMS,
)
from liveavatar.planning.memory.modes import Mode
from liveavatar.planning.memory.workload import Workload


@functools.lru_cache(maxsize=8)
def dit_weight_bytes(config: DiTConfig, value_bytes: int, fp8: bool) -> tuple[int, int]:
    """(bytes of the DiT's weights, elements of its largest Linear) in bf16/fp32 or fp8."""
    import torch
    from torch import nn

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.fp8 import excluded

    model = CausalS2VDiT(config, dtype=torch.bfloat16, device="meta")
    total, largest = 0, 0
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if fp8 and type(module) is nn.Linear and not excluded(name):
            total += module.weight.numel() + 4  # e4m3 values + the fp32 scale
            total += 0 if module.bias is None else module.bias.numel() * value_bytes
        else:
            total += sum(p.numel() for p in own) * value_bytes
        if type(module) is nn.Linear:
            largest = max(largest, module.weight.numel())
    return total, largest


def rope_table_bytes(config: DiTConfig) -> int:
    """The cos/sin tables (fp32) of `rope.RopeTables`: temporal rows plus two 2048-row spatial axes."""
    from liveavatar.engines.diffusion.model.rope import axis_pairs

    pt, ph, pw = axis_pairs(config.head_dim)
    return 2 * 4 * (config.rope_max_positions * pt + 2048 * (ph + pw))


@functools.lru_cache(maxsize=8)
def module_params(kind: str, shape: tuple) -> int:
    """Parameters of the VAE (`shape` = (dim, dim_mult)) or the T5 encoder (`shape` = T5Config fields)."""
    import torch

    if kind == "vae":
        from liveavatar.engines.diffusion.vae.vae import VAEConfig, WanVAE

        dim, mult = shape
        with torch.device("meta"):
            return sum(
                p.numel() for p in WanVAE(dataclasses.replace(VAEConfig.wan21(), dim=dim, dim_mult=mult)).parameters()
            )
    from liveavatar.engines.diffusion.encoders.text_encoder import T5Config, T5Encoder

    with torch.device("meta"):
        return sum(p.numel() for p in T5Encoder(T5Config(*shape) if shape else T5Config.umt5_xxl()).parameters())


def dit_weights(work: Workload, mode: Mode) -> tuple[int, int]:
    """(the DiT's weights with its RoPE tables, elements of its largest Linear)."""
    if not work.holds_dit:
        return 0, 0
    weights, largest = dit_weight_bytes(work.dit, work.value_bytes, mode.weights == "fp8")
    return weights + rope_table_bytes(work.dit), largest


def _kv_bytes_per_token(work: Workload, mode: Mode) -> float:
    c = work.dit
    return 2 * c.num_layers * c.dim * bytes_per_value(mode.kv, work.value_bytes, c.head_dim)  # K and V, every layer


def ring_bytes(work: Workload, mode: Mode) -> int:
    """One step's KV ring (one clip of latent frames), wherever it is stored."""
    return int(work.loop().ring_tokens * _kv_bytes_per_token(work, mode)) if work.holds_dit else 0


def kv_rings_on_gpu(work: Workload, mode: Mode) -> int:
    """The rings on the GPU: this GPU's steps resident, or two layers in flight when streamed from the host."""
    if not work.holds_dit:
        return 0
    if mode.kv.placement == "host":
        c = work.dit
        return int(2 * work.loop().ring_tokens * 2 * c.dim * bytes_per_value(mode.kv, work.value_bytes, c.head_dim))
    return ring_bytes(work, mode) * work.steps


def sink_bytes(work: Workload, mode: Mode) -> int:
    return int(work.loop().sink_tokens * _kv_bytes_per_token(work, mode)) if work.holds_dit else 0


def text_context_bytes(work: Workload) -> int:
    """The text embedding and every layer's cross-attention K/V (computed once per video)."""
    c = work.dit
    return c.text_len * c.dim * (1 + 2 * c.num_layers) * work.value_bytes if work.holds_dit else 0


def audio_feature_bytes(work: Workload) -> int:
    """wav2vec2's features for the whole video (25 layers), kept on the GPU."""
    return 25 * work.dit.audio_dim * work.num_frames * work.value_bytes


def dit_activation_bytes(work: Workload, mode: Mode) -> int:
    """One DiT call's transient tensors (see calibration for the per-token counts)."""
    if not work.holds_dit:
        return 0
    from liveavatar.engines.diffusion.runtime.loop import BLOCK_LATENT_FRAMES

    c, vb, loop = work.dit, work.value_bytes, work.loop()
    n = BLOCK_LATENT_FRAMES * loop.tokens_per_frame
    window = loop.ring_tokens + loop.sink_tokens
    act = vb * (
        n * (ACT_VALUES_PER_BLOCK_TOKEN_DIM * c.dim + 2 * c.ffn_dim) + ACT_VALUES_PER_WINDOW_TOKEN_DIM * window * c.dim
    )
    if mode.kv.kv == "fp8":  # one layer's rows dequantised to the model dtype
        act += 2 * window * c.dim * vb
    return int(act)


def vae_weight_bytes(work: Workload) -> int:
    return module_params("vae", (work.vae_dim, work.vae_dim_mult)) * work.value_bytes if work.holds_vae else 0


def vae_decode_bytes(work: Workload, mode: Mode) -> int:
    """One streaming decode pass (calibrated), narrower when the mode decodes in spatial tiles."""
    if not work.holds_vae:
        return 0
    from liveavatar.engines.diffusion.latents import VAE_STRIDE
    from liveavatar.engines.diffusion.vae.tiles import DEFAULT_OVERLAP

    tile_width = (work.width + (mode.decode_tiles - 1) * DEFAULT_OVERLAP * VAE_STRIDE) / mode.decode_tiles
    pixels = work.height * tile_width
    return int(
        DECODE_BYTES_PER_PIXEL_FRAME
        * (work.vae_dim / 96)
        * pixels
        * 4
        * work.decode_latents_per_pass
        * work.value_bytes
        / 2
    )


def umt5_bytes(work: Workload) -> int:
    return module_params("t5", work.t5_shape) * work.value_bytes if work.encodes else 0


def wav2vec2_bytes(work: Workload) -> int:
    return WAV2VEC2_LARGE_PARAMS * work.value_bytes if work.encodes else 0


def lora_transient_bytes(work: Workload, mode: Mode, largest_linear: int) -> int:
    """Loading's one module in flight: the LoRA merge's fp32 delta, or (fp8) one module being quantised."""
    vb = work.value_bytes
    if mode.weights == "fp8":  # bf16 weights quantised module by module from host memory
        return largest_linear * (vb + 4 + 1)
    return largest_linear * (4 + 4 + vb) if work.lora else 0  # W.float(), the fp32 delta, the cast result
