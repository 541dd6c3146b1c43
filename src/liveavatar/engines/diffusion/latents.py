"""The latent space the VAE encodes to and the DiT denoises in, named once.

Wan2.1's VAE (which Wan2.2-S2V uses) maps 8x8 pixels to one latent cell with 16 channels, and
4 video frames to one latent frame after the first; the DiT reads and writes that same grid.
Plain numbers: importing this costs nothing (no torch).
"""

from __future__ import annotations

LATENT_CHANNELS = 16  # the VAE's z_dim = the DiT's in/out channels
VAE_STRIDE = 8  # pixels per latent cell along each spatial axis
FRAMES_PER_LATENT = 4  # video frames per latent frame


def latent_hw(height: int, width: int) -> tuple[int, int]:
    """The latent grid ``(h, w)`` of a ``height`` x ``width`` video."""
    return height // VAE_STRIDE, width // VAE_STRIDE
