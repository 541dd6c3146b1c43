"""Causal audio encoder: weighted sum of the wav2vec2 layers -> causal conv stack -> audio tokens.

Keys match upstream's ``casual_audio_encoder.*`` (``weights``, ``encoder.conv1_local.conv``,
``encoder.conv1_global.conv``, ``encoder.conv2.conv``, ``encoder.conv3.conv``,
``encoder.final_linear``, ``encoder.padding_tokens``). Runs in fp32 like upstream's fp32 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Module):
    """Conv1d with a left 'replicate' pad of kernel_size - 1 (no look-ahead)."""

    def __init__(self, chan_in: int, chan_out: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.pad = kernel_size - 1
        self.conv = nn.Conv1d(chan_in, chan_out, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, 0), mode="replicate")
        w, b = self.conv.weight, self.conv.bias
        return F.conv1d(x, w.to(x.dtype), None if b is None else b.to(x.dtype), self.conv.stride)


class MotionEncoderTC(nn.Module):
    """Upstream's MotionEncoder_tc: per-frame local tokens (num_heads + 1 padding) and a global token."""

    def __init__(self, in_dim: int, hidden_dim: int, num_heads: int, need_global: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.need_global = need_global
        self.conv1_local = CausalConv1d(in_dim, hidden_dim // 4 * num_heads, 3, stride=1)
        if need_global:
            self.conv1_global = CausalConv1d(in_dim, hidden_dim // 4, 3, stride=1)
        self.conv2 = CausalConv1d(hidden_dim // 4, hidden_dim // 2, 3, stride=2)
        self.conv3 = CausalConv1d(hidden_dim // 2, hidden_dim, 3, stride=2)
        if need_global:
            self.final_linear = nn.Linear(hidden_dim, hidden_dim)
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, 1, hidden_dim))

    @staticmethod
    def _ln_act(x: torch.Tensor) -> torch.Tensor:
        """[N, C, T] -> LayerNorm over C (eps 1e-6, no affine) -> SiLU, back to [N, C, T]."""
        x = x.transpose(1, 2)
        return F.silu(F.layer_norm(x, (x.shape[-1],), eps=1e-6)).transpose(1, 2)

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        x = self._ln_act(self.conv2(self._ln_act(x)))
        return self._ln_act(self.conv3(x)).transpose(1, 2)  # [N, T', C]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [B, T, C_in] -> local [B, T', num_heads + 1, C], global [B, T', 1, C] (or None)."""
        b = x.shape[0]
        xc = x.transpose(1, 2)
        loc = self.conv1_local(xc)  # [B, heads*C4, T]
        loc = loc.reshape(b, self.num_heads, loc.shape[1] // self.num_heads, loc.shape[2])
        loc = self._tail(loc.flatten(0, 1))  # [(B heads), T', C]
        loc = loc.reshape(b, self.num_heads, loc.shape[1], loc.shape[2]).transpose(1, 2)  # [B, T', heads, C]
        pad = self.padding_tokens.to(loc.dtype).expand(b, loc.shape[1], 1, loc.shape[3])
        local = torch.cat([loc, pad], dim=2)
        if not self.need_global:
            return local, None
        glob = self._tail(self.conv1_global(xc))
        glob = F.linear(glob, self.final_linear.weight.to(glob.dtype), self.final_linear.bias.to(glob.dtype))
        return local, glob.unsqueeze(2)


class CausalAudioEncoder(nn.Module):
    """wav2vec2 layer stack [B, L, C_a, T] -> (local [B, T', n+1, dim], global [B, T', 1, dim] | None)."""

    def __init__(self, audio_dim: int, out_dim: int, num_token: int, need_global: bool, num_layers: int = 25) -> None:
        super().__init__()
        self.encoder = MotionEncoderTC(audio_dim, out_dim, num_token, need_global)
        self.weights = nn.Parameter(torch.full((1, num_layers, 1, 1), 0.01))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        w = F.silu(self.weights.float())
        feat = ((features.float() * w) / w.sum(dim=1, keepdim=True)).sum(dim=1)  # [B, C_a, T]
        return self.encoder(feat.transpose(1, 2))
