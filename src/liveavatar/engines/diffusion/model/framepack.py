"""FramePack motion tokens: the last 19 motion latents packed at 1x / 2x / 4x compression.

Keys ``frame_packer.proj`` (1,2,2), ``proj_2x`` (2,4,4), ``proj_4x`` (4,8,8). The newest frame
("post") gets temporal RoPE position -1, the 2 before it -3, the 16 oldest -19, -14, -9, -4.
"""

from __future__ import annotations

import torch
from torch import nn

from liveavatar.engines.diffusion.latents import LATENT_CHANNELS
from liveavatar.engines.diffusion.model.rope import GridGroup


class FramePackMotioner(nn.Module):
    def __init__(
        self,
        dim: int,
        in_channels: int = LATENT_CHANNELS,
        buckets: tuple[int, int, int] = (1, 2, 16),
        drop_mode: str = "padd",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.buckets = buckets
        self.drop_mode = drop_mode
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.proj_2x = nn.Conv3d(in_channels, dim, kernel_size=(2, 4, 4), stride=(2, 4, 4))
        self.proj_4x = nn.Conv3d(in_channels, dim, kernel_size=(4, 8, 8), stride=(4, 8, 8))

    def forward(self, motion_latents: torch.Tensor, add_last_motion: int = 2) -> tuple[torch.Tensor, list[GridGroup]]:
        """motion_latents [B, 16, T, h, w] -> tokens [B, Lm, dim] and their RoPE groups."""
        b, c, t, h, w = motion_latents.shape
        b0, b1, b2 = self.buckets
        total = b0 + b1 + b2
        padded = motion_latents.new_zeros(b, c, total, h, w)
        overlap = min(total, t)
        if overlap > 0:
            padded[:, :, total - overlap :] = motion_latents[:, :, t - overlap :]
        if add_last_motion < 2 and self.drop_mode != "drop":
            zero_end = sum(self.buckets[: len(self.buckets) - add_last_motion - 1])
            padded[:, :, total - zero_end :] = 0
        lat_4x, lat_2x, lat_post = padded.split([b2, b1, b0], dim=2)
        post = self.proj(lat_post).flatten(2).transpose(1, 2)
        x2 = self.proj_2x(lat_2x).flatten(2).transpose(1, 2)
        x4 = self.proj_4x(lat_4x).flatten(2).transpose(1, 2)
        h2, w2 = h // 2, w // 2
        groups = [
            GridGroup((-b0, 0, 0), (0, h2, w2), (b0, h2, w2)),
            GridGroup((-(b0 + b1), 0, 0), (-(b0 + b1) + b1 // 2, h // 4, w // 4), (b1, h2, w2)),
            GridGroup((-total, 0, 0), (-total + b2 // 4, h // 8, w // 8), (b2, h2, w2)),
        ]
        parts = [post, x2, x4]
        if add_last_motion < 2 and self.drop_mode == "drop":
            keep = [i for i in range(3) if not (i == 0 or (i == 1 and add_last_motion < 1))]
            parts = [parts[i] for i in keep]
            groups = [groups[i] for i in keep]
        return torch.cat(parts, dim=1), groups
