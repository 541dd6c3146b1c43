"""Building blocks of the Wan2.1 causal 3D VAE (module names match ``Wan2.1_VAE.pth``).

Every block takes ``(x, cache)`` with ``x`` shaped ``[B, C, T, H, W]``. ``cache`` selects how time
is handled:

* ``None``: the whole clip in one pass (each causal conv sees two zero frames before frame 0).
* a list of tensors (one slot per cached layer, see :func:`assign_cache_slots`): the clip is the
  next chunk of a longer stream; each layer reads its slot (the last frames it saw) and writes it
  back. A slot that is still ``None`` means "this is the first chunk of the stream".

Both give the same numbers for the same frames, which is what makes streaming decode exact.
The time resamplers treat the stream's first frame specially, as upstream does: the decoder's
temporal upsampler passes frame 0 through undoubled (so latent 0 gives 1 frame, later latents 4),
and the encoder's temporal downsampler keeps frame 0 as its own output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Cache = list  # list[torch.Tensor | None], one entry per cached layer
CONTEXT_FRAMES = 2  # past frames a 3-tap causal conv needs (upstream's CACHE_T)


class CausalConv3d(nn.Conv3d):
    """Conv3d whose time axis only looks back: the past comes from the cache (or zeros)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int | tuple, stride: int | tuple = 1, padding: int | tuple = 0
    ) -> None:
        pad = (padding,) * 3 if isinstance(padding, int) else tuple(padding)
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=(0, pad[1], pad[2]))
        self.context = 2 * pad[0]
        self.uses_cache = self.context > 0
        self.slot = -1

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        if self.context > 0:
            past = cache[self.slot] if cache is not None else None
            if past is None:
                b, c, _, h, w = x.shape
                past = x.new_zeros(b, c, self.context, h, w)
            x = torch.cat([past, x], dim=2)
            if cache is not None:
                cache[self.slot] = x[:, :, -self.context :].clone()
        return self._conv_taps(x) if x.device.type == "cpu" else super().forward(x)

    def _conv_taps(self, x: torch.Tensor) -> torch.Tensor:
        """The same convolution as a sum of 2-D convolutions, one per time tap.

        torch's CPU conv3d falls back to a slow reference kernel; per-tap conv2d runs on oneDNN
        and is about 9x faster here, with identical results up to float rounding.
        """
        b, c, t, h, w = x.shape
        kt, st = self.kernel_size[0], self.stride[0]
        t_out = (t - kt) // st + 1
        out = None
        for k in range(kt):
            frames = x[:, :, k : k + st * (t_out - 1) + 1 : st].transpose(1, 2).reshape(b * t_out, c, h, w)
            y = F.conv2d(frames, self.weight[:, :, k], None, self.stride[1:], self.padding[1:])
            out = y if out is None else out.add_(y)
        out = out + self.bias.view(1, -1, 1, 1) if self.bias is not None else out
        return out.reshape(b, t_out, *out.shape[1:]).transpose(1, 2)


class RMSNorm(nn.Module):
    """L2-normalise over channels (dim 1), times sqrt(C) and a per-channel gain; fp32 inside."""

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1) if images else torch.ones(dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        # F.normalize(dim=1) semantics (x / max(|x|, 1e-12)); a channel reduction with rsqrt is
        # several times faster than linalg.vector_norm over a strided axis on the CPU
        y = xf * (torch.rsqrt(xf.square().sum(1, keepdim=True).clamp_min(1e-24)) * self.scale)
        return (y * self.gamma.float()).to(x.dtype)


class CachedSequential(nn.Sequential):
    """``nn.Sequential`` that hands the cache to the children that use one."""

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, (CausalConv3d, ResidualBlock, Resample, AttentionBlock)):
                x = layer(x, cache)
            else:
                x = layer(x)
        return x


def _per_frame(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _per_clip(x: torch.Tensor, b: int) -> torch.Tensor:
    bt, c, h, w = x.shape
    return x.reshape(b, bt // b, c, h, w).transpose(1, 2)


class NearestUp2x(nn.Module):
    """2x nearest upsampling of images (fp32 inside, as upstream)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class Resample(nn.Module):
    """Spatial 2x up/down sampling, optionally with a 2x temporal up/down sampling conv."""

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.uses_cache = mode == "downsample3d"
        self.slot = -1
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(NearestUp2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        elif mode.startswith("downsample"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        else:
            raise ValueError(f"unknown resample mode {mode!r}")
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=0)

    def _time_up(self, x: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        first = cache is None or cache[self.time_conv.slot] is None
        if first:
            # the stream's frame 0 passes through undoubled; later frames see zeros, not frame 0
            head, x = x[:, :, :1], x[:, :, 1:]
            if cache is not None:
                b, c, _, h, w = head.shape
                cache[self.time_conv.slot] = head.new_zeros(b, c, CONTEXT_FRAMES, h, w)
            if x.shape[2] == 0:
                return head
        b, c, t, h, w = x.shape
        y = self.time_conv(x, cache).reshape(b, 2, c, t, h, w)
        y = torch.stack((y[:, 0], y[:, 1]), dim=3).reshape(b, c, 2 * t, h, w)
        return torch.cat([head, y], dim=2) if first else y

    def _time_down(self, x: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        past = cache[self.slot] if cache is not None else None
        if cache is not None:
            cache[self.slot] = x[:, :, -1:].clone()
        if past is None:
            # the stream's frame 0 is kept as is; windows of 3 with stride 2 start at frame 0
            if x.shape[2] < 3:
                return x[:, :, :1]
            return torch.cat([x[:, :, :1], self.time_conv(x)], dim=2)
        return self.time_conv(torch.cat([past, x], dim=2))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._time_up(x, cache)
        b = x.shape[0]
        x = _per_clip(self.resample(_per_frame(x)), b)
        if self.mode == "downsample3d":
            x = self._time_down(x, cache)
        return x


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.residual = CachedSequential(
            RMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            nn.SiLU(),
            nn.Identity(),  # upstream's dropout slot, kept so that the indices match the checkpoint
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        return self.residual(x, cache) + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame (frames never mix)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.to_qkv(self.norm(_per_frame(x)))
        q, k, v = y.reshape(b * t, 1, 3 * c, h * w).transpose(2, 3).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q, k, v)
        y = y.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        return x + _per_clip(self.proj(y), b)


def _middle(dim: int) -> CachedSequential:
    return CachedSequential(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


def _head(dim: int, out_ch: int) -> CachedSequential:
    return CachedSequential(RMSNorm(dim), nn.SiLU(), CausalConv3d(dim, out_ch, 3, padding=1))


class Encoder3d(nn.Module):
    def __init__(
        self, dim: int, out_ch: int, dim_mult: tuple[int, ...], num_res_blocks: int, temporal_down: tuple[bool, ...]
    ) -> None:
        super().__init__()
        dims = [dim * m for m in (1, *dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, "downsample3d" if temporal_down[i] else "downsample2d"))
        self.downsamples = CachedSequential(*layers)
        self.middle = _middle(dims[-1])
        self.head = _head(dims[-1], out_ch)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        x = self.conv1(x, cache)
        x = self.downsamples(x, cache)
        return self.head(self.middle(x, cache), cache)


class Decoder3d(nn.Module):
    def __init__(
        self, dim: int, z_dim: int, dim_mult: tuple[int, ...], num_res_blocks: int, temporal_up: tuple[bool, ...]
    ) -> None:
        super().__init__()
        dims = [dim * m for m in (dim_mult[-1], *dim_mult[::-1])]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = _middle(dims[0])
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim //= 2  # the previous upsampler halved the channels
            for _ in range(num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, "upsample3d" if temporal_up[i] else "upsample2d"))
        self.upsamples = CachedSequential(*layers)
        self.head = _head(dims[-1], 3)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        x = self.conv1(x, cache)
        x = self.middle(x, cache)
        x = self.upsamples(x, cache)
        return self.head(x, cache)


def assign_cache_slots(module: nn.Module) -> int:
    """Number the cached layers under ``module``; returns how many slots a cache list needs."""
    count = 0
    for sub in module.modules():
        if getattr(sub, "uses_cache", False):
            sub.slot = count
            count += 1
    return count
