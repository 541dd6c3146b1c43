"""Per-video conditions for the DiT: text context, audio features, reference and motion latents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# upstream: 73 pixel frames of motion context -> 19 latents (FramePack buckets 1 + 2 + 16)
MOTION_PIXEL_FRAMES = 73
# upstream's single-GPU path encodes the reference repeated 5x and keeps latent 1 (4 static frames)
REFERENCE_REPEAT = 5


@dataclass
class Conditions:
    """Everything the block loop needs that does not change from block to block."""

    text: torch.Tensor  # umT5 features [L, text_dim]
    audio: torch.Tensor  # wav2vec2 features per video frame [1, 25, audio_dim, num_clips * frames_per_clip]
    ref_latents: torch.Tensor  # [1, 16, 1, h, w]
    motion_latents: torch.Tensor  # [1, 16, 19, h, w]


def image_to_pixels(image: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 RGB ``[H, W, 3]`` -> ``[1, 3, 1, H, W]`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32)
    x = x.permute(2, 0, 1)[None, :, None] / 127.5 - 1.0
    return x.to(dtype)


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Decoded ``[1, 3, T, H, W]`` in [-1, 1] -> uint8 RGB ``[T, H, W, 3]`` on the CPU."""
    x = ((frames[0].float().clamp(-1, 1) + 1) * 127.5).round_().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().cpu().numpy()


@torch.no_grad()
def reference_latents(vae, portrait: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference latent and the static motion latents of the fitted portrait.

    Both are encodings of the still portrait: the reference as upstream's single-GPU path makes it
    (latent 1 of the portrait repeated 5 times), the motion context as 73 still frames -> 19 latents.
    """
    pixels = image_to_pixels(portrait, vae.device, vae.dtype)
    ref = vae.encode(pixels.expand(-1, -1, REFERENCE_REPEAT, -1, -1))[:, :, 1:2]
    motion = vae.encode(pixels.expand(-1, -1, MOTION_PIXEL_FRAMES, -1, -1))
    return ref, motion


@torch.no_grad()
def motion_from_frames(vae, frames: torch.Tensor, portrait: np.ndarray) -> torch.Tensor:
    """Motion latents from the newest generated frames ``[1, 3, T, H, W]`` in [-1, 1].

    The last 73 frames are encoded (still-portrait frames fill in when fewer were made), as
    upstream's single-GPU online decode does when it re-prefills the sink after the first clip.
    """
    recent = frames[:, :, -MOTION_PIXEL_FRAMES:].to(vae.device, vae.dtype)
    missing = MOTION_PIXEL_FRAMES - recent.shape[2]
    if missing > 0:
        still = image_to_pixels(portrait, vae.device, vae.dtype).expand(-1, -1, missing, -1, -1)
        recent = torch.cat([still, recent], dim=2)
    return vae.encode(recent)
