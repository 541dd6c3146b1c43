"""From a resolved config and the actual inputs to the Plan every engine follows."""

from __future__ import annotations

import math

from liveavatar.config import GenerateConfig, Plan
from liveavatar.engines.base import Inputs
from liveavatar.engines.diffusion.runtime.scheduler import timesteps
from liveavatar.sizing import FPS, audio_clip_count, output_size, parse_size, video_frame_count


def make_plan(config: GenerateConfig, inputs: Inputs, engine: str) -> Plan:
    """Size from the portrait and ``--size``; clips and frames from the audio and ``--num_clip``."""
    width_area, height_area = parse_size(config.size)
    height, width = output_size(inputs.image.shape[0], inputs.image.shape[1], width_area * height_area)
    frames_per_clip = config.infer_frames
    clips = audio_clip_count(len(inputs.audio), frames_per_clip, inputs.sample_rate)
    if config.num_clip is not None:
        clips = min(clips, config.num_clip)
    num_frames = video_frame_count(inputs.audio_seconds, clips, frames_per_clip)
    # upstream's count has one clip past the audio; skip clips that would be cut away entirely
    clips = min(clips, math.ceil(num_frames / frames_per_clip))
    return Plan(
        engine=engine,
        height=height,
        width=width,
        fps=FPS,
        frames_per_clip=frames_per_clip,
        num_clips=clips,
        num_frames=num_frames,
        sample_steps=config.sample_steps,
        sample_shift=config.sample_shift,
        seed=config.base_seed,
        prompt=config.prompt,
        enable_online_decode=bool(config.enable_online_decode),
        timesteps=tuple(float(t) for t in timesteps(config.sample_steps, config.sample_shift))
        if engine == "diffusion"
        else None,
    )
