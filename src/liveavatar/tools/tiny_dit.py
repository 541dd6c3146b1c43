"""A tiny random DiT (sharded safetensors + index + config.json) and Live Avatar LoRA, in the
release's file formats, sized to match the tiny encoders of :mod:`liveavatar.tools.tiny_checkpoint`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from liveavatar.engines.diffusion.loading.layout import DIT_CONFIG, DIT_INDEX, LORA_FILENAME, dit_shard_name
from liveavatar.engines.diffusion.model.dit_config import DiTConfig

# text/audio widths follow the tiny umT5 (32) and wav2vec2 (32); text_len stays upstream's 512 so
# that any prompt the tiny tokenizer encodes fits
TINY_DIT = dataclasses.replace(DiTConfig.tiny(), text_len=512)
TINY_LORA_RANK = 4
TINY_LORA_ALPHA = 2.0
NUM_SHARDS = 2
_CONFIG_FIELDS = (
    "dim",
    "ffn_dim",
    "freq_dim",
    "num_heads",
    "num_layers",
    "patch_size",
    "in_dim",
    "out_dim",
    "text_len",
    "text_dim",
    "eps",
    "qk_norm",
    "cross_attn_norm",
    "cond_dim",
    "audio_dim",
    "num_audio_token",
    "enable_adain",
    "adain_mode",
    "audio_inject_layers",
    "add_last_motion",
    "enable_framepack",
    "framepack_drop_mode",
)


def _random_state(config: DiTConfig, seed: int) -> dict:
    """Every parameter drawn at a scale that keeps activations O(1) (zero-init layers made live)."""
    import torch

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT

    model = CausalS2VDiT(config)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, p in model.state_dict().items():
        if p.ndim >= 2:
            fan_in = p[0].numel()
            state[name] = torch.randn(p.shape, generator=gen) / fan_in**0.5
        elif "norm" in name:
            state[name] = 1 + 0.1 * torch.randn(p.shape, generator=gen)
        else:
            state[name] = 0.1 * torch.randn(p.shape, generator=gen)
    return state


def write_tiny_dit(ckpt_dir: Path, config: DiTConfig = TINY_DIT, seed: int = 0) -> list[Path]:
    """``config.json`` + ``diffusion_pytorch_model-0000k-of-0000n.safetensors`` + the index."""
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = _random_state(config, seed)
    names = sorted(state)
    shards = [names[i::NUM_SHARDS] for i in range(NUM_SHARDS)]
    weight_map, written = {}, []
    for k, shard in enumerate(shards, start=1):
        file = dit_shard_name(k, NUM_SHARDS)
        save_file(
            {n: state[n].to(dtype=__import__("torch").bfloat16).contiguous() for n in shard},
            str(ckpt_dir / file),
            metadata={"format": "pt"},
        )
        weight_map.update({n: file for n in shard})
        written.append(ckpt_dir / file)
    total = sum(t.numel() * 2 for t in state.values())
    (ckpt_dir / DIT_INDEX).write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )
    cfg = {
        "_class_name": "CausalWanModel_S2V",
        **{f: getattr(config, f) for f in _CONFIG_FIELDS},
        "zero_timestep": True,
    }
    (ckpt_dir / DIT_CONFIG).write_text(json.dumps(cfg, indent=1))
    return [ckpt_dir / DIT_CONFIG, ckpt_dir / DIT_INDEX, *written]


def write_tiny_lora(lora_dir: Path, config: DiTConfig = TINY_DIT, seed: int = 1) -> Path:
    """``liveavatar.safetensors``: peft-named lora_A/lora_B pairs for every upstream target."""
    import torch
    from safetensors.torch import save_file

    from liveavatar.engines.diffusion.loading.lora import lora_target_modules
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT

    with torch.device("meta"):
        model = CausalS2VDiT(config)
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name in lora_target_modules(model):
        layer = model.get_submodule(name)
        tensors[f"base_model.model.{name}.lora_A.default.weight"] = (
            torch.randn(TINY_LORA_RANK, layer.in_features, generator=gen) / layer.in_features**0.5
        )
        tensors[f"base_model.model.{name}.lora_B.default.weight"] = 0.02 * torch.randn(
            layer.out_features, TINY_LORA_RANK, generator=gen
        )
    path = Path(lora_dir) / LORA_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"lora_rank": str(TINY_LORA_RANK), "lora_alpha": str(TINY_LORA_ALPHA)})
    return path
