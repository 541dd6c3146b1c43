"""Audio injection after selected DiT blocks: AdaLN on the global audio token, then per-frame
cross-attention from the frame's noisy tokens to that frame's audio tokens (added residually).

Keys: ``audio_injector.injector.{i}.{q,k,v,o,norm_q,norm_k}`` and
``audio_injector.injector_adain_layers.{i}.linear`` (diffusers ``AdaLayerNorm``, chunk_dim=1:
[shift | scale] = Linear(SiLU(g)); LN(eps 1e-5, no affine)(x) * (1 + scale) + shift).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from liveavatar.engines.diffusion.model.blocks import Attention


def injector_mapping(num_layers: int, inject_layers: tuple[int, ...]) -> tuple[int, dict[int, int]]:
    """(number of injectors, block index -> injector index), reproducing upstream's name matching.

    Upstream matches ``f"transformer_blocks.{i}"`` as a *substring* of each block's module name,
    so with e.g. inject layer 1 and 12+ blocks, blocks 10..19 also create injectors and layer 1
    uses the last one. For the released 14B config this is the plain one-to-one mapping.
    """
    mapping: dict[int, int] = {}
    count = 0
    for block in range(num_layers):
        name = f"root.transformer_blocks.{block}"
        for layer in inject_layers:
            if f"transformer_blocks.{layer}" in name:
                mapping[layer] = count
                count += 1
    return count, mapping


class AdaLayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.linear = nn.Linear(dim, dim * 2)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x [N, L, C], temb [N, C] -> fp32 [N, L, C]."""
        emb = self.linear(F.silu(temb))
        shift, scale = emb.float().chunk(2, dim=1)
        return F.layer_norm(x.float(), (x.shape[-1],), eps=self.eps) * (1 + scale[:, None]) + shift[:, None]


class AudioInjector(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_layers: int,
        inject_layers: tuple[int, ...],
        enable_adain: bool,
        adain_mode: str,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        count, self.block_to_injector = injector_mapping(num_layers, inject_layers)
        self.use_adain = enable_adain and adain_mode == "attn_norm"
        self.injector = nn.ModuleList([Attention(dim, num_heads, True, eps) for _ in range(count)])
        if enable_adain:
            self.injector_adain_layers = nn.ModuleList([AdaLayerNorm(dim) for _ in range(count)])
            if adain_mode != "attn_norm":
                # present in upstream's state dict (need_adain_ont) but never used at inference
                self.injector_adain_output_layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(count)])

    def forward(
        self, block_idx: int, x: torch.Tensor, audio_tokens: torch.Tensor, audio_global: torch.Tensor | None
    ) -> torch.Tensor:
        """x [B, F*P, C]; audio_tokens [B, F, n, C]; audio_global [B, F, 1, C] -> x + residual."""
        return inject(*self.parts(block_idx), x, audio_tokens, audio_global)

    def parts(self, block_idx: int) -> tuple[Attention, AdaLayerNorm | None]:
        """The attention and (with AdaIN) the AdaLayerNorm that serve block `block_idx`."""
        i = self.block_to_injector[block_idx]
        return self.injector[i], self.injector_adain_layers[i] if self.use_adain else None


def inject(
    attn: Attention,
    adain: AdaLayerNorm | None,
    x: torch.Tensor,
    audio_tokens: torch.Tensor,
    audio_global: torch.Tensor | None,
) -> torch.Tensor:
    """One injection (a plain function of its modules, so one compiled graph serves every layer)."""
    b, frames = audio_tokens.shape[:2]
    h = x.reshape(b * frames, x.shape[1] // frames, x.shape[2])
    if adain is not None:
        h = adain(h, audio_global.reshape(b * frames, -1).to(x.dtype))
    else:
        h = F.layer_norm(h.float(), (h.shape[-1],), eps=1e-6)
    kv = attn.context_kv(audio_tokens.reshape(b * frames, audio_tokens.shape[2], -1).to(x.dtype))
    res = attn.cross_attend(h.to(x.dtype), kv)
    return x + res.reshape(x.shape)
