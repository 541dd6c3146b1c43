"""Merge the Live Avatar LoRA into the DiT: W <- W + (alpha / r) * B @ A (fp32, then cast back).

Accepted key names (peft style): ``[base_model.model.]<module>.lora_{A,B}[.default].weight``.
The targets are upstream's peft targets: every Linear whose name is, or ends with ".", one of
q, k, v, o, ffn.0, ffn.2 (448 modules at 14B). Unlike upstream (which loads with strict=False and
silently drops keys it cannot place), a LoRA key naming no target module is an error.
Plain parameter keys are applied before the merge as upstream does: ``<target>.base_layer.weight``
and parameters of non-target modules overwrite the model's tensor; ``<target>.weight`` (which
upstream's peft wrapper renames, so upstream ignores it) is skipped and reported in `ignored`.
Rank and alpha come from explicit arguments, else the file's metadata (lora_rank/r/rank,
lora_alpha/alpha), else upstream's defaults r=128, alpha=64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from liveavatar.errors import UserError

LORA_TARGETS = ("q", "k", "v", "o", "ffn.0", "ffn.2")
DEFAULT_RANK = 128
DEFAULT_ALPHA = 64.0
PEFT_PREFIX = "base_model.model."
_RANK_KEYS = ("lora_rank", "r", "rank")
_ALPHA_KEYS = ("lora_alpha", "alpha")


@dataclass
class MergeResult:
    num_merged: int
    num_overwritten: int
    rank: int
    alpha: float
    ignored: list[str] = field(default_factory=list)


def lora_target_modules(model: nn.Module) -> list[str]:
    """Names of the Linear layers upstream's peft config adapts (suffix match on the module name)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in LORA_TARGETS)
    ]


def _split_lora_key(key: str) -> tuple[str, str] | None:
    """'<module>.lora_A.default.weight' -> (module, 'A'); None for a plain key."""
    for part in ("A", "B"):
        for tail in (f".lora_{part}.default.weight", f".lora_{part}.weight"):
            if key.endswith(tail):
                return key[: -len(tail)], part
    return None


def _meta_number(metadata: dict[str, str] | None, names: tuple[str, ...]) -> float | None:
    for name in names:
        if metadata and name in metadata:
            try:
                return float(metadata[name])
            except ValueError:
                continue
    return None


def merge_lora(model: nn.Module, path: Path | str, rank: int | None = None, alpha: float | None = None) -> MergeResult:
    """Merge a LoRA safetensors file into `model` in place; returns what was merged."""
    from liveavatar.engines.diffusion.loading.checkpoint import open_safetensors

    source = str(path)
    if not Path(path).is_file():
        raise UserError(source, "LoRA file not found", "download liveavatar.safetensors from Quark-Vision/Live-Avatar")
    with open_safetensors(Path(path), "--lora_path_dmd") as handle:
        metadata = handle.metadata()
        keys = list(handle.keys())
        rank = int(rank if rank is not None else _meta_number(metadata, _RANK_KEYS) or DEFAULT_RANK)
        alpha = float(alpha if alpha is not None else _meta_number(metadata, _ALPHA_KEYS) or DEFAULT_ALPHA)
        modules = dict(model.named_modules())
        params = dict(model.named_parameters())
        targets = set(lora_target_modules(model))
        pairs: dict[str, dict[str, str]] = {}
        plain: list[tuple[str, str]] = []
        ignored: list[str] = []
        bad: list[str] = []
        for key in keys:
            name = key[len(PEFT_PREFIX) :] if key.startswith(PEFT_PREFIX) else key
            split = _split_lora_key(name)
            if split is not None:
                module, part = split
                if module not in targets:
                    bad.append(key)
                else:
                    pairs.setdefault(module, {})[part] = key
                continue
            if ".base_layer." in name:
                owner = name.split(".base_layer.")[0]
                target = name.replace(".base_layer.", ".")
                if owner in targets and target in params:
                    plain.append((key, target))
                else:
                    bad.append(key)
            elif name in params:
                owner = name.rsplit(".", 1)[0]
                (ignored if owner in targets else plain).append(key if owner in targets else (key, name))
            else:
                bad.append(key)
        if bad:
            raise UserError(
                source,
                f"{len(bad)} LoRA keys match no LoRA target or parameter of the DiT (first: {', '.join(bad[:5])})",
                "use the Live Avatar LoRA made for Wan2.2-S2V-14B (keys like "
                "blocks.0.self_attn.q.lora_A.default.weight)",
            )
        half = [m for m, p in pairs.items() if len(p) != 2]
        if half:
            raise UserError(
                source,
                f"{len(half)} modules have only one of lora_A/lora_B (first: {half[0]})",
                "use a complete LoRA file",
            )
        with torch.no_grad():
            for key, target in plain:
                param = params[target]
                value = handle.get_tensor(key)
                if value.shape != param.shape:
                    raise UserError(
                        source,
                        f"{key} has shape {tuple(value.shape)}, expected {tuple(param.shape)}",
                        "use the LoRA made for this model",
                    )
                param.copy_(value.to(param.dtype))
            scale = alpha / rank
            for module_name, p in pairs.items():
                layer = modules[module_name]
                a = handle.get_tensor(p["A"])
                b = handle.get_tensor(p["B"])
                weight = layer.weight
                if a.shape != (rank, weight.shape[1]) or b.shape != (weight.shape[0], rank):
                    raise UserError(
                        source,
                        f"{module_name}: lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} do not "
                        f"fit rank {rank} and weight {tuple(weight.shape)}",
                        "pass the LoRA's rank and alpha (or store lora_rank/lora_alpha in its metadata)",
                    )
                if weight.device.type == "meta":
                    raise ValueError("load the base weights before merging the LoRA")
                dev = weight.device
                delta = (b.to(dev, torch.float32) @ a.to(dev, torch.float32)) * scale
                weight.copy_((weight.float() + delta).to(weight.dtype))
    return MergeResult(len(pairs), len(plain), rank, alpha, ignored)
