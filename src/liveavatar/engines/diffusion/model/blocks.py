"""Transformer block of the causal S2V DiT: self-attention, text cross-attention, FFN, modulation.

Precision follows upstream's bf16 run: norms, modulation and gates in fp32; the residual stream
is fp32 inside a block and rounded to the model dtype between blocks; the cross-attention input
is ``norm3(x.to(bfloat16))`` rounded to bf16 even in an fp32 model (an upstream quirk we keep).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from liveavatar.engines.diffusion.model.attention import sdpa

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class RMSNorm(nn.Module):
    """RMS norm over the full channel dim, computed in fp32, rounded, then scaled (WanRMSNorm)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Non-affine LayerNorm in fp32 (returns fp32)."""
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [B, L, C] with per-group shift/scale [B, G, C]: each group covers L/G consecutive tokens."""
    b, n, c = x.shape
    g = shift.shape[1]
    x = x.reshape(b, g, n // g, c)
    return (x * (1 + scale[:, :, None]) + shift[:, :, None]).reshape(b, n, c)


def gate(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    b, n, c = y.shape
    return (y.reshape(b, g.shape[1], n // g.shape[1], c) * g[:, :, None]).reshape(b, n, c)


class Attention(nn.Module):
    """q/k/v/o projections with RMSNorm on q and k (WanSelfAttention / WanCrossAttention weights)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self._heads(self.norm_q(self.q(x))), self._heads(self.norm_k(self.k(x))), self._heads(self.v(x)))

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K/V of a context (text or audio tokens) [B, Lc, C] -> 2 x [B, Lc, H, D]."""
        return self._heads(self.norm_k(self.k(context))), self._heads(self.v(context))

    def self_attend(self, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        q, k, v = self.qkv(x)
        return self.o(attend(q, k, v))

    def cross_attend(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q = self._heads(self.norm_q(self.q(x)))
        return self.o(sdpa(q, kv[0], kv[1]))


class DiTBlock(nn.Module):
    """One causal S2V attention block (keys: modulation, self_attn.*, norm3.*, cross_attn.*, ffn.*)."""

    def __init__(
        self, dim: int, ffn_dim: int, num_heads: int, qk_norm: bool, cross_attn_norm: bool, eps: float
    ) -> None:
        super().__init__()
        self.eps = eps
        self.self_attn = Attention(dim, num_heads, qk_norm, eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.cross_attn = Attention(dim, num_heads, qk_norm, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.empty(1, 6, dim))

    def _norm3(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        xb = x.to(torch.bfloat16)
        if isinstance(self.norm3, nn.LayerNorm):
            xb = F.layer_norm(
                xb.float(), (x.shape[-1],), self.norm3.weight.float(), self.norm3.bias.float(), self.eps
            ).to(torch.bfloat16)
        return xb.to(dtype)

    def _mod(self, e0: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.modulation.float().unsqueeze(1) + e0).unbind(dim=2)

    def attn_inputs(self, x: torch.Tensor, e0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First half of the block: modulated norm -> self-attention q, k, v [B, L, H, D] (un-roped)."""
        e = self._mod(e0)
        h = modulate(layer_norm(x, self.eps).to(x.dtype).float(), e[0], e[1]).to(x.dtype)
        return self.self_attn.qkv(h)

    def attn_outputs(
        self, x: torch.Tensor, e0: torch.Tensor, y: torch.Tensor, text_kv: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Second half: y = attention output [B, L, H*D] -> o, gate, text cross-attention, FFN."""
        dtype = x.dtype
        e = self._mod(e0)
        x = x.float() + gate(self.self_attn.o(y).float(), e[2])
        x = x + self.cross_attn.cross_attend(self._norm3(x, dtype), text_kv)
        h = modulate(layer_norm(x, self.eps), e[3], e[4]).to(dtype)
        x = x + gate(self.ffn(h).float(), e[5])
        return x.to(dtype)

    def forward(
        self, x: torch.Tensor, e0: torch.Tensor, attend: Attend, text_kv: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """x [B, L, C] (model dtype); e0 [B, G, 6, C] fp32 per-group time modulation -> [B, L, C]."""
        return self.attn_outputs(x, e0, attend(*self.attn_inputs(x, e0)), text_kv)
