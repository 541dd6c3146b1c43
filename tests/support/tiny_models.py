"""Small models and checkpoint folders the tests make themselves (nothing is downloaded)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def config_only_ckpt(tmp_path: Path) -> Path:
    """A checkpoint folder holding only the 14B DiT's config.json: all a dry run reads."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"dim": 5120, "num_layers": 40, "num_heads": 40, "ffn_dim": 13824}))
    return ckpt


def tiny_loop_setup(num_frames: int, latent_hw: tuple[int, int] = (8, 8)):
    """A tiny random DiT (text_len 16) and its conditions: (dit, text context, audio, reference, motion)."""
    import torch

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    torch.manual_seed(0)
    config = dataclasses.replace(DiTConfig.tiny(), text_len=16)
    dit = CausalS2VDiT(config)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in dit.parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen) / max(1, p[0].numel()) ** 0.5
                if p.ndim >= 2
                else 0.1 * torch.randn(p.shape, generator=gen)
            )
    text = dit.encode_text(torch.randn(5, config.text_dim, generator=gen))
    audio = torch.randn(1, 25, config.audio_dim, num_frames, generator=gen)
    h, w = latent_hw
    ref, motion = torch.randn(1, 16, 1, h, w, generator=gen), torch.randn(1, 16, 19, h, w, generator=gen)
    return dit, text, audio, ref, motion
