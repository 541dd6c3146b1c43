"""Timestep embedding (sinusoid -> MLP -> 6-way modulation), the head, and fp32 linear helpers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from liveavatar.engines.diffusion.model.blocks import layer_norm, modulate


def linear_fp32(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """A Linear computed in fp32 whatever the parameter dtype (upstream's fp32 autocast regions)."""
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x.float(), layer.weight.float(), bias)


def sinusoid(dim: int, t: torch.Tensor) -> torch.Tensor:
    """[N] timesteps -> [N, dim] = [cos(t f), sin(t f)], f = 10000^(-k/half), computed in float64."""
    half = dim // 2
    pos = t.to(torch.float64)
    freqs = torch.pow(
        torch.tensor(10000.0, dtype=torch.float64, device=t.device),
        -torch.arange(half, dtype=torch.float64, device=t.device) / half,
    )
    angles = torch.outer(pos, freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def time_modulation(
    time_embedding: nn.Sequential, time_projection: nn.Sequential, freq_dim: int, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """t [B, F] -> e [B*F, C] (head modulation input) and e0 [B, F, 6, C] (block modulation), fp32."""
    x = sinusoid(freq_dim, t.flatten()).float()
    e = linear_fp32(F.silu(linear_fp32(x, time_embedding[0])), time_embedding[2])
    e0 = linear_fp32(F.silu(e), time_projection[1])
    return e, e0.view(t.shape[0], t.shape[1], 6, -1)


class Head(nn.Module):
    """Output head (keys head.head.*, head.modulation): per-frame AdaLN in fp32, then Linear."""

    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.head = nn.Linear(dim, out_dim * math.prod(patch_size))
        self.modulation = nn.Parameter(torch.empty(1, 2, dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x [B, F*P, C], e [B*F, C] fp32 -> [B, F*P, out*prod(patch)] in x's dtype."""
        b = x.shape[0]
        mod = self.modulation.float() + e.unsqueeze(1)  # [B*F, 2, C]
        shift = mod[:, 0].view(b, -1, mod.shape[-1])
        scale = mod[:, 1].view(b, -1, mod.shape[-1])
        h = modulate(layer_norm(x, self.eps).to(x.dtype).float(), shift, scale)
        return linear_fp32(h, self.head).to(x.dtype)
