"""The shapes one GPU's share of a run has: what every estimator reads."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from liveavatar.engines.diffusion import latents
from liveavatar.engines.diffusion.model.dit_config import DiTConfig


@dataclass(frozen=True)
class Workload:
    """The shapes of one GPU's share of a run."""

    dit: DiTConfig
    height: int
    width: int
    frames_per_clip: int
    steps: int  # denoising steps whose KV rings this GPU holds (all of them on one GPU)
    num_frames: int = 0  # video frames (the audio features stay on the GPU for the whole video)
    value_bytes: int = 2  # the model dtype (bf16 on CUDA)
    encoders_resident: bool = False  # --offload_model false: umT5 and wav2vec2 stay on the GPU
    lora: bool = True
    holds_vae: bool = True  # the worker that decodes (multi-GPU: the last one)
    decode_latents_per_pass: int = 1
    vae_dim: int = 96
    vae_dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    t5_shape: tuple = ()  # T5Config fields (empty: umT5-XXL)
    holds_dit: bool = True  # False: a decode worker (the VAE, its decode and the encoders only)
    encodes: bool = True  # the encoders visit this GPU (the decoding rank encodes the conditions)

    @property
    def latent_hw(self) -> tuple[int, int]:
        return latents.latent_hw(self.height, self.width)

    def loop(self):
        """The block loop's own plan for these shapes (token counts come from one place)."""
        from liveavatar.engines.diffusion.runtime.loop import LoopPlan

        return LoopPlan.for_size(self.height, self.width, self.frames_per_clip, self.steps)


def workload_for(
    config,
    plan,
    dit: DiTConfig,
    steps: int | None = None,
    holds_vae: bool = True,
    holds_dit: bool = True,
    encodes: bool = True,
) -> Workload:
    """The Workload of a resolved GenerateConfig and its Plan (`steps`: the steps this GPU holds;
    default all of them)."""
    return Workload(
        dit,
        plan.height,
        plan.width,
        plan.frames_per_clip,
        plan.sample_steps if steps is None else steps,
        num_frames=plan.num_clips * plan.frames_per_clip,
        encoders_resident=config.offload_model is False and encodes,
        holds_vae=holds_vae,
        holds_dit=holds_dit,
        encodes=encodes,
    )


def resize(work: Workload, mode) -> Workload:
    """The workload a guide rung gives (its size keeps the portrait's aspect only approximately)."""
    if mode.keeps_shape:
        return work
    from liveavatar.sizing import parse_size

    height, width = work.height, work.width
    if mode.size:
        w, h = parse_size(mode.size)
        scale = (w * h / (width * height)) ** 0.5
        height, width = int(height * scale) // 16 * 16, int(width * scale) // 16 * 16
    return dataclasses.replace(
        work, height=height, width=width, frames_per_clip=mode.infer_frames or work.frames_per_clip
    )
