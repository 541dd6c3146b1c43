"""The tiny DiT and the inputs of a short block loop, for the tests of the caches' forms and of the
attention kernel (random, scaled so the loop's numbers stay in range)."""

from __future__ import annotations

import dataclasses


def tiny_loop_inputs(plan):
    """(dit, text context, audio, reference latents, motion latents) for `plan` (8 x 8 latents)."""
    import torch

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    torch.manual_seed(0)
    dit = CausalS2VDiT(dataclasses.replace(DiTConfig.tiny(), text_len=16))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in dit.parameters():
            p.copy_(
                torch.randn(p.shape, generator=gen) / max(1, p[0].numel()) ** 0.5
                if p.ndim >= 2
                else 0.1 * torch.randn(p.shape, generator=gen)
            )
    c = dit.config
    text = dit.encode_text(torch.randn(5, c.text_dim, generator=gen))
    audio = torch.randn(1, 25, c.audio_dim, plan.num_clips * plan.frames_per_clip, generator=gen)
    ref, motion = torch.randn(1, 16, 1, 8, 8, generator=gen), torch.randn(1, 16, 19, 8, 8, generator=gen)
    return dit, text, audio, ref, motion
