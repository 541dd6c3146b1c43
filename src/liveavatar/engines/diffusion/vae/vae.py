"""The Wan2.1 causal video VAE: chunked causal encode, full decode, and a streaming decoder.

Pixels ``[B, 3, T, H, W]`` in [-1, 1] map to normalised latents ``[B, 16, 1 + (T-1)//4, H/8, W/8]``.
Latent 0 decodes to 1 frame and every later latent to 4. ``StreamingDecoder`` keeps the causal
convolutions' last frames between calls, so decoding a video block by block gives the same frames
as decoding it in one go, at a constant cost per block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from liveavatar.engines.diffusion.latents import LATENT_CHANNELS, VAE_STRIDE
from liveavatar.engines.diffusion.loading.state_dicts import build_from_pth
from liveavatar.engines.diffusion.vae.blocks import CausalConv3d, Decoder3d, Encoder3d, assign_cache_slots
from liveavatar.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Mapping

# per-channel latent statistics of Wan2.1's VAE (upstream's normalisation constants)
WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip
TEMPORAL_STRIDE = 4
SPATIAL_STRIDE = VAE_STRIDE


@dataclass(frozen=True)
class VAEConfig:
    dim: int = 96
    z_dim: int = LATENT_CHANNELS
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)

    @classmethod
    def wan21(cls) -> VAEConfig:
        return cls()

    @property
    def latent_mean(self) -> tuple[float, ...]:
        return WAN21_LATENT_MEAN if self.z_dim == len(WAN21_LATENT_MEAN) else (0.0,) * self.z_dim

    @property
    def latent_std(self) -> tuple[float, ...]:
        return WAN21_LATENT_STD if self.z_dim == len(WAN21_LATENT_STD) else (1.0,) * self.z_dim

    @classmethod
    def from_state_dict(cls, state: Mapping, source: Path) -> VAEConfig:
        """Read the sizes off the tensors' shapes (so the real file and tiny test files both load)."""
        try:
            dim = int(state["encoder.conv1.weight"].shape[0])
            z_dim = int(state["conv2.weight"].shape[0])
        except KeyError as exc:
            raise UserError(
                "--ckpt_dir",
                f"{source} is not a Wan2.1 VAE (no {exc.args[0]})",
                "use Wan2.1_VAE.pth from the Wan-AI/Wan2.2-S2V-14B release",
            ) from None
        pattern = re.compile(r"encoder\.downsamples\.(\d+)\.")
        indices = sorted({int(m.group(1)) for k in state if (m := pattern.match(k))})
        levels: list[list[int]] = [[]]
        temporal: list[bool] = []
        for i in indices:
            prefix = f"encoder.downsamples.{i}."
            if prefix + "resample.1.weight" in state:
                temporal.append(prefix + "time_conv.weight" in state)
                levels.append([])
            elif prefix + "residual.2.weight" in state:
                levels[-1].append(int(state[prefix + "residual.2.weight"].shape[0]))
            else:
                raise UserError(
                    "--ckpt_dir",
                    f"{source} has an encoder layer this VAE does not know ({prefix}*)",
                    "use Wan2.1_VAE.pth from the Wan-AI/Wan2.2-S2V-14B release",
                )
        counts = {len(level) for level in levels}
        if len(counts) != 1 or 0 in counts or any(c % dim for level in levels for c in level):
            raise UserError(
                "--ckpt_dir",
                f"{source} has an irregular encoder layout",
                "use Wan2.1_VAE.pth from the Wan-AI/Wan2.2-S2V-14B release",
            )
        return cls(
            dim=dim,
            z_dim=z_dim,
            dim_mult=tuple(level[-1] // dim for level in levels),
            num_res_blocks=counts.pop(),
            temporal_downsample=tuple(temporal),
        )


class WanVAE(nn.Module):
    """The VAE's modules, under the checkpoint's names: ``encoder``, ``conv1``, ``conv2``, ``decoder``."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        z = config.z_dim
        self.encoder = Encoder3d(config.dim, 2 * z, config.dim_mult, config.num_res_blocks, config.temporal_downsample)
        self.conv1 = CausalConv3d(2 * z, 2 * z, 1)
        self.conv2 = CausalConv3d(z, z, 1)
        self.decoder = Decoder3d(
            config.dim, z, config.dim_mult, config.num_res_blocks, config.temporal_downsample[::-1]
        )
        self.encoder_slots = assign_cache_slots(self.encoder)
        self.decoder_slots = assign_cache_slots(self.decoder)
        self._stats: dict = {}

    @property
    def dtype(self) -> torch.dtype:
        return self.conv2.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.conv2.weight.device

    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std as fp32 ``[1, z, 1, 1, 1]`` tensors on the model's device."""
        key = str(self.device)
        if key not in self._stats:
            shape = (1, self.config.z_dim, 1, 1, 1)
            mean = torch.tensor(self.config.latent_mean, dtype=torch.float32).view(shape).to(self.device)
            std = torch.tensor(self.config.latent_std, dtype=torch.float32).view(shape).to(self.device)
            self._stats[key] = (mean, std)
        return self._stats[key]

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` in [-1, 1] -> normalised latents ``[B, z, 1 + (T-1)//4, H/8, W/8]``.

        Runs causally in chunks of 1, 4, 4, ... frames (constant memory in T); frames past the
        last whole chunk are ignored, as upstream does.
        """
        b, c, t, h, w = video.shape
        if c != 3 or t < 1 or h % SPATIAL_STRIDE or w % SPATIAL_STRIDE:
            raise ValueError(f"expected [B, 3, T, H, W] with H and W multiples of 8, got {list(video.shape)}")
        x = video.to(self.device, self.dtype)
        cache: list = [None] * self.encoder_slots
        pieces = [self.encoder(x[:, :, :1], cache)]
        for i in range((t - 1) // TEMPORAL_STRIDE):
            start = 1 + TEMPORAL_STRIDE * i
            pieces.append(self.encoder(x[:, :, start : start + TEMPORAL_STRIDE], cache))
        mu = self.conv1(torch.cat(pieces, dim=2))[:, : self.config.z_dim]
        mean, std = self.latent_stats()
        return ((mu.float() - mean) / std).to(self.dtype)

    def unnormalise(self, latents: torch.Tensor) -> torch.Tensor:
        mean, std = self.latent_stats()
        return (latents.to(self.device, torch.float32) * std + mean).to(self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, latents_per_pass: int = 1) -> torch.Tensor:
        """Normalised latents ``[B, z, L, h, w]`` -> frames ``[B, 3, 1 + 4(L-1), 8h, 8w]`` in [-1, 1]."""
        return StreamingDecoder(self, latents_per_pass=latents_per_pass).decode_next(latents)


class StreamingDecoder:
    """Decodes a video's latents as they arrive, continuing the causal state between calls.

    The first latent after construction (or :meth:`reset`) gives 1 frame, every later one 4, so
    ``decode_next`` on ``n`` latents returns ``4n`` frames, or ``4n - 3`` on the first call.
    Call :meth:`reset` before each new video (upstream never does; see the fact sheet §11.11).
    ``latents_per_pass`` bounds how many latents go through the decoder at once (0: all given);
    the result does not depend on it. With ``compile=True`` the decoder runs under
    ``torch.compile`` (two graphs: the first call, and every later call of the same length).
    """

    def __init__(self, vae: WanVAE, latents_per_pass: int = 0, compile: bool = False) -> None:
        self.vae = vae
        self.latents_per_pass = latents_per_pass
        self._decoder = torch.compile(vae.decoder, dynamic=False) if compile else vae.decoder
        self._cache: list | None = None

    def reset(self) -> None:
        """Forget the previous video: the next latent is treated as the first one."""
        self._cache = None

    @property
    def started(self) -> bool:
        return self._cache is not None

    def save(self) -> list | None:
        """The causal state as it is now (layers replace their entries, never change them in place)."""
        return None if self._cache is None else list(self._cache)

    def restore(self, saved: list | None) -> None:
        """Back to a `save`d state (a decode pass that failed half-way left a mixed state)."""
        self._cache = None if saved is None else list(saved)

    @torch.no_grad()
    def decode_next(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[B, z, n, h, w]`` -> the next frames ``[B, 3, 4n (or 4n-3), 8h, 8w]``."""
        if latents.ndim != 5 or latents.shape[1] != self.vae.config.z_dim:
            raise ValueError(f"expected latents [B, {self.vae.config.z_dim}, n, h, w], got {list(latents.shape)}")
        x = self.vae.conv2(self.vae.unnormalise(latents))
        if self._cache is None:
            self._cache = [None] * self.vae.decoder_slots
        step = self.latents_per_pass or x.shape[2]
        pieces = [self._decoder(chunk, self._cache) for chunk in x.split(step, dim=2)]
        frames = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)
        return frames.clamp_(-1.0, 1.0)


def build_vae(config: VAEConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> WanVAE:
    """A randomly initialised VAE (tests, tiny checkpoints)."""
    return WanVAE(config).to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_vae(path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16) -> WanVAE:
    """Load ``Wan2.1_VAE.pth`` (any size with its layout); the config is read from the shapes."""
    return build_from_pth(
        path,
        "Wan2.1 VAE",
        VAEConfig.from_state_dict,
        WanVAE,
        lambda c: f"Wan2.1 VAE layout (dim {c.dim}, mults {list(c.dim_mult)})",
        device,
        dtype,
    )
