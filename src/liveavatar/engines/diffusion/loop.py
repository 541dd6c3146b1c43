"""Block-wise autoregressive generation: clips of blocks, per-step KV caches, the rolling sink.

For each clip r, noise is drawn with seed + r. The clip's latent frames are denoised in blocks of
3 (the last block is shorter when the clip's latent count is not a multiple of 3, so every latent
frame is denoised), each block through all sampling steps, step i attending to its own KV cache
(a ring holding one clip of latent frames, as upstream) plus the shared sink. After the first
block of the video, its first clean latent becomes the new reference ("rolling sink"), and the
sink is re-prefilled with it when clip 1 starts, together with motion latents re-encoded from clip
0's frames when the caller provides them (upstream's single-GPU online-decode path). The KV rings
carry the motion context from clip to clip; block and frame positions are global, so RoPE keeps
counting across clips.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from liveavatar.engines.diffusion.scheduler import EulerSampler

BLOCK_LATENT_FRAMES = 3
FRAMES_PER_LATENT = 4
# upstream allocates 2800 condition tokens; ours is sized from the latent grid instead
SINK_TOKENS_PER_FRAME = 2.5


@dataclass(frozen=True)
class LoopPlan:
    frames_per_clip: int  # video frames per clip (a multiple of 4)
    num_clips: int
    latent_hw: tuple[int, int]
    sample_steps: int
    sample_shift: float
    seed: int
    last_clip_frames: int | None = None  # stop early once the last clip has this many frames

    @property
    def latents_per_clip(self) -> int:
        return self.frames_per_clip // FRAMES_PER_LATENT

    def blocks(self) -> list[tuple[int, int]]:
        """(first latent frame in the clip, number of latent frames) for each block of a clip."""
        n = self.latents_per_clip
        return [(s, min(BLOCK_LATENT_FRAMES, n - s)) for s in range(0, n, BLOCK_LATENT_FRAMES)]


def clip_noise(plan: LoopPlan, clip: int, device: torch.device) -> torch.Tensor:
    """The clip's initial noise ``[1, 16, latents, h, w]``, from a generator seeded seed + clip."""
    gen = torch.Generator(device=device).manual_seed(plan.seed + clip)
    h, w = plan.latent_hw
    return torch.randn((1, 16, plan.latents_per_clip, h, w), generator=gen, device=device, dtype=torch.float32)


@torch.no_grad()
def denoise_blocks(dit, text_ctx, audio: torch.Tensor, ref_latents: torch.Tensor, motion_latents: torch.Tensor,
                   plan: LoopPlan, next_motion: Callable[[], torch.Tensor] | None = None
                   ) -> Iterator[tuple[int, torch.Tensor, bool]]:
    """Yield ``(clip, clean latents [1, 16, f, h, w], last block of its clip)`` in order.

    ``next_motion``, when given, is called once clip 0 has been consumed and returns the motion
    latents for the re-prefilled sink (upstream's single-GPU online decode re-encodes them from the
    frames generated so far); without it the sink keeps the still-portrait motion latents.
    """
    device, dtype = dit.device, dit.dtype
    h, w = plan.latent_hw
    tokens_per_frame = (h // 2) * (w // 2)
    sampler = EulerSampler(plan.sample_steps, plan.sample_shift)
    sink, caches = dit.new_caches(
        num_steps=plan.sample_steps,
        ring_tokens=plan.latents_per_clip * tokens_per_frame,
        sink_tokens=int(SINK_TOKENS_PER_FRAME * tokens_per_frame),
    )
    dit.prefill_sink(sink, ref_latents, motion_latents, text_ctx)
    rng = random.Random(plan.seed)
    new_reference: torch.Tensor | None = None
    frame_index = 0  # global latent frame index of the current block
    for clip in range(plan.num_clips):
        if clip == 1 and new_reference is not None:
            motion = next_motion() if next_motion is not None else motion_latents
            dit.prefill_sink(sink, new_reference, motion, text_ctx)
        noise = clip_noise(plan, clip, device)
        latents_needed = plan.latents_per_clip
        if clip == plan.num_clips - 1 and plan.last_clip_frames is not None:
            latents_needed = -(-plan.last_clip_frames // FRAMES_PER_LATENT)
        blocks = [(start, count) for start, count in plan.blocks() if start < latents_needed]
        for index, (start, count) in enumerate(blocks):
            x = noise[:, :, start : start + count].to(dtype)
            audio_cols = clip * plan.frames_per_clip + FRAMES_PER_LATENT * start
            audio_in = audio[..., audio_cols : audio_cols + FRAMES_PER_LATENT * count]
            current_start = frame_index * tokens_per_frame
            for step in range(sampler.num_steps):
                v = dit.denoise_block(caches[step], x, float(sampler.timesteps[step]), text_ctx, audio_in,
                                      None, current_start, rng=rng)
                x = sampler.step(x, v, step)
            if new_reference is None:
                new_reference = x[:, :, :1].clone()
            frame_index += count
            yield clip, x, index == len(blocks) - 1
