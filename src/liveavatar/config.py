"""Run configuration: what the user asked for (GenerateConfig), the presets, and the resolved Plan."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from liveavatar.errors import UserError
from liveavatar.sizing import parse_size

ENGINES = ("preview", "diffusion")
DEFAULT_SIZE = "704*384"
DEFAULT_INFER_FRAMES = 48
DEFAULT_SAMPLE_STEPS = 4
DEFAULT_SAMPLE_SHIFT = 3.0
DEFAULT_SEED = 420
MAX_SAMPLE_STEPS = 8


@dataclass(frozen=True)
class Preset:
    """A named bundle of settings from the field's user guide; explicit flags win over it."""

    size: str
    num_clip: int
    sample_steps: int
    infer_frames: int
    enable_online_decode: bool


PRESETS: dict[str, Preset] = {
    "quick": Preset(size="384*256", num_clip=10, sample_steps=3, infer_frames=32, enable_online_decode=False),
    "standard": Preset(size="688*368", num_clip=100, sample_steps=4, infer_frames=48, enable_online_decode=True),
    "high": Preset(size="704*384", num_clip=1000, sample_steps=5, infer_frames=48, enable_online_decode=True),
}


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `liveavatar generate` was asked for, after presets, before looking at inputs.

    ``None`` means "not given": presets and defaults fill those in through :func:`resolve`.
    """

    image: Path
    audio: Path
    prompt: str = ""
    size: str | None = None
    num_clip: int | None = None
    infer_frames: int | None = None
    sample_steps: int | None = None
    sample_shift: float = DEFAULT_SAMPLE_SHIFT
    sample_guide_scale: float = 0.0
    base_seed: int = DEFAULT_SEED
    enable_online_decode: bool | None = None
    offload_model: bool | None = None
    fp8: bool = False
    ckpt_dir: Path | None = None
    lora_path_dmd: Path | None = None
    num_gpus_dit: int = 1
    enable_vae_parallel: bool | None = None  # K > 1: one more worker only decodes (default: when a GPU is left)
    save_file: Path | None = None
    engine: str | None = None
    preset: str | None = None
    overwrite: bool = False
    transcript: str | None = None
    skip_checks: bool = False
    resume: bool = False  # continue the interrupted run of save_file (see liveavatar.resume)
    extra: dict = field(default_factory=dict)

    def resolve(self) -> "GenerateConfig":
        """Fill unset values from the preset, then from the defaults, and validate counts."""
        preset = PRESETS[self.preset] if self.preset else None
        filled = dataclasses.replace(
            self,
            size=self.size or (preset.size if preset else DEFAULT_SIZE),
            num_clip=self.num_clip if self.num_clip is not None else (preset.num_clip if preset else None),
            infer_frames=self.infer_frames if self.infer_frames is not None else (preset.infer_frames if preset else DEFAULT_INFER_FRAMES),
            sample_steps=self.sample_steps if self.sample_steps is not None else (preset.sample_steps if preset else DEFAULT_SAMPLE_STEPS),
            enable_online_decode=(
                self.enable_online_decode
                if self.enable_online_decode is not None
                else (preset.enable_online_decode if preset else True)
            ),
        )
        filled.validate()
        return filled

    def validate(self) -> None:
        if self.size is not None:
            parse_size(self.size)
        if self.num_clip is not None and self.num_clip <= 0:
            raise UserError("--num_clip", f"{self.num_clip} clips requested", "give a positive number of clips, or leave it out to follow the audio")
        if self.infer_frames is not None:
            if self.infer_frames <= 0:
                raise UserError("--infer_frames", f"{self.infer_frames} frames per clip", "give a positive multiple of 4, e.g. 48")
            if self.infer_frames % 4:
                raise UserError("--infer_frames", f"{self.infer_frames} is not a multiple of 4", "give a positive multiple of 4 (one latent frame is 4 video frames), e.g. 48")
        if self.sample_steps is not None and not 1 <= self.sample_steps <= MAX_SAMPLE_STEPS:
            raise UserError("--sample_steps", f"{self.sample_steps} steps", f"give 1 to {MAX_SAMPLE_STEPS} steps (the distilled model uses 4)")
        if self.sample_shift <= 0:
            raise UserError("--sample_shift", f"{self.sample_shift} is not positive", "give a positive shift, e.g. 3")
        if self.num_gpus_dit <= 0:
            raise UserError("--num_gpus_dit", f"{self.num_gpus_dit} GPUs", "give a positive number of GPUs")
        if self.engine is not None and self.engine not in ENGINES:
            raise UserError("--engine", f'"{self.engine}" is not an engine', f"use one of: {', '.join(ENGINES)}")


@dataclass(frozen=True)
class Plan:
    """What will be generated, fully resolved from the config and the inputs; read-only."""

    engine: str
    height: int
    width: int
    fps: int
    frames_per_clip: int
    num_clips: int
    num_frames: int
    sample_steps: int
    sample_shift: float
    seed: int
    prompt: str
    enable_online_decode: bool
    offload_model: bool
    fp8: bool
    timesteps: tuple[float, ...] | None = None

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def clip_frame_counts(self) -> list[int]:
        """Frames to keep from each clip; the last clip is cut where the audio ends."""
        counts = []
        left = self.num_frames
        for _ in range(self.num_clips):
            counts.append(min(self.frames_per_clip, left))
            left -= counts[-1]
        return counts

    def summary(self) -> dict:
        out = {
            "engine": self.engine,
            "height": self.height,
            "width": self.width,
            "fps": self.fps,
            "frames_per_clip": self.frames_per_clip,
            "num_clips": self.num_clips,
            "num_frames": self.num_frames,
            "duration_s": round(self.duration_s, 3),
            "sample_steps": self.sample_steps,
            "seed": self.seed,
        }
        if self.timesteps is not None:
            out["timesteps"] = [round(t, 4) for t in self.timesteps]
        return out
