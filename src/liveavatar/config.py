"""Run configuration: what the user asked for (GenerateConfig), the presets, and the resolved Plan.

Each generate option is one field of :class:`GenerateConfig`; its flag, help text, value type and
default live in that field's metadata (see :func:`option`), and the CLI, its help and the
``note:`` lines about flags an engine ignores are all built from them. Adding a flag means adding
one field here.

Each field also declares, once, the groups it belongs to (``groups=`` in :func:`option`): whether it
builds the engine (the server keeps that resident), whether a server request may set it, whether it
changes the video (the resume identity) and whether ``doctor`` asks for it. Every list of option
names elsewhere is derived from those tags through :func:`in_group`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liveavatar.argtypes import any_int, gib_list, number, positive_int
from liveavatar.errors import UserError
from liveavatar.sizing import DEFAULT_SIZE, parse_size

ENGINES = ("preview", "diffusion")
RANDOM_SEED = -1  # upstream's "pick a random seed"
MAX_SEED = 2**63 - 1  # torch and numpy generators both take it
MAX_SAMPLE_STEPS = 8
DISTILLED_STEPS = 4  # the Live Avatar LoRA was distilled for 4 steps at shift 3
DISTILLED_SHIFT = 3.0

# The groups a GenerateConfig field may declare (option(groups=...)).
ENGINE_OPTION = "engine_option"  # chooses or builds the engine: `serve` takes it at start, for every job
PER_REQUEST = "per_request"  # a server request may set it (by its CLI name)
IDENTITY = "identity"  # changes the video: part of the resume identity, repeated by the "finish" command
DOCTOR = "doctor"  # describes the planned run that `liveavatar doctor` checks
GROUPS = (ENGINE_OPTION, PER_REQUEST, IDENTITY, DOCTOR)


def option(
    default: Any = None,
    *,
    help: str,
    type: Callable[[str], Any] | None = None,
    kind: str = "value",
    fallback: Any = None,
    shown: str | None = None,
    choices: tuple[str, ...] | None = None,
    required: bool = False,
    metavar: str | None = None,
    engines: tuple[str, ...] = ENGINES,
    cuda_only: bool = False,
    groups: tuple[str, ...] = (),
    doctor_default: Any = None,
) -> Any:
    """A config field that is also a ``generate`` flag (``--<field name>``).

    ``kind``: "value" (takes a value), "bool" (``--flag`` or ``--flag False``, upstream's str2bool)
    or "switch" (present or not). ``fallback`` is the value used when neither the flag nor a
    preset sets it (the field itself then defaults to ``None`` = "not given"); ``shown`` replaces
    the "(default ...)" the help text otherwise gets from the default or fallback. ``engines`` and
    ``cuda_only`` say where the flag has an effect; elsewhere giving it prints a ``note:`` line.
    ``groups``: the lists the option belongs to (see GROUPS); ``doctor_default``: what ``doctor``
    assumes when the flag is not given, where that differs from the run's own default.
    """
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown option groups {sorted(unknown)}; known: {GROUPS}")
    meta = {
        "help": help,
        "type": type,
        "kind": kind,
        "fallback": fallback,
        "shown": shown,
        "choices": choices,
        "required": required,
        "metavar": metavar,
        "engines": engines,
        "cuda_only": cuda_only,
        "groups": frozenset(groups),
        "doctor_default": doctor_default,
    }
    if required:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


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
    "high": Preset(size=DEFAULT_SIZE, num_clip=1000, sample_steps=5, infer_frames=48, enable_online_decode=True),
}

DIFFUSION = ("diffusion",)


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `liveavatar generate` was asked for, after presets, before looking at inputs.

    ``None`` means "not given": presets and fallbacks fill those in through :meth:`resolve`.
    """

    image: Path = option(required=True, type=Path, groups=(IDENTITY,), help="reference portrait (JPG or PNG)")
    audio: Path = option(required=True, type=Path, groups=(IDENTITY,), help="driving speech (WAV or MP3)")
    prompt: str = option(
        "",
        metavar="PROMPT",
        shown="empty",
        groups=(IDENTITY,),
        help="text describing the character, action, scene and style (or @file.txt)",
    )
    size: str | None = option(
        fallback=DEFAULT_SIZE,
        metavar='"W*H"',
        groups=(PER_REQUEST, IDENTITY, DOCTOR),
        help="target area; the output keeps the portrait's aspect",
    )
    num_clip: int | None = option(
        type=positive_int,
        shown="as many as the audio needs",
        groups=(PER_REQUEST, IDENTITY),
        help="at most this many clips",
    )
    infer_frames: int | None = option(
        type=any_int, fallback=48, groups=(PER_REQUEST, IDENTITY, DOCTOR), help="video frames per clip, a multiple of 4"
    )
    sample_steps: int | None = option(
        type=any_int,
        fallback=DISTILLED_STEPS,
        engines=DIFFUSION,
        groups=(PER_REQUEST, IDENTITY, DOCTOR),
        help=f"denoising steps, 1-{MAX_SAMPLE_STEPS}",
    )
    sample_shift: float = option(
        DISTILLED_SHIFT, type=number, engines=DIFFUSION, groups=(PER_REQUEST, IDENTITY), help="flow-matching time shift"
    )
    # its own warning (pipeline) says why it is ignored, so no engine note as well
    sample_guide_scale: float = option(
        0.0, type=number, groups=(PER_REQUEST,), help="accepted for compatibility; the distilled model uses no guidance"
    )
    base_seed: int = option(
        420, type=any_int, groups=(PER_REQUEST, IDENTITY), help="random seed; -1 picks one and prints it"
    )
    enable_online_decode: bool | None = option(
        kind="bool",
        fallback=True,
        engines=DIFFUSION,
        groups=(PER_REQUEST, IDENTITY),
        help="decode each block as soon as it is denoised",
    )
    offload_model: bool | None = option(
        kind="bool",
        shown="on",
        engines=DIFFUSION,
        cuda_only=True,
        groups=(ENGINE_OPTION,),
        help="text and audio encoders on the GPU only while they encode",
    )
    fp8: bool = option(
        False,
        kind="bool",
        engines=DIFFUSION,
        cuda_only=True,
        groups=(ENGINE_OPTION, IDENTITY, DOCTOR),
        help="FP8 linear layers (Hopper/Ada GPUs)",
    )
    ckpt_dir: Path | None = option(
        type=Path,
        engines=DIFFUSION,
        shown="ckpt/Wan2.2-S2V-14B",
        groups=(ENGINE_OPTION, IDENTITY, DOCTOR),
        help="the Wan2.2-S2V-14B folder",
    )
    lora_path_dmd: Path | None = option(
        type=Path,
        engines=DIFFUSION,
        shown="ckpt/LiveAvatar",
        groups=(ENGINE_OPTION, IDENTITY),
        help="the Live Avatar LoRA file or folder",
    )
    # doctor checks a multi-GPU machine: it plans for the guide's 4 workers unless told otherwise
    num_gpus_dit: int = option(
        1,
        type=positive_int,
        engines=DIFFUSION,
        groups=(ENGINE_OPTION, DOCTOR),
        doctor_default=4,
        help="DiT workers, one GPU each, the steps split between them (see docs/multi-gpu.md)",
    )
    enable_vae_parallel: bool | None = option(
        kind="bool",
        engines=DIFFUSION,
        shown="when a GPU is left",
        groups=(ENGINE_OPTION, DOCTOR),
        help="with --num_gpus_dit > 1: one more worker only decodes",
    )
    save_file: Path | None = option(type=Path, shown="output/<date>_<steps>step_<prompt>.mp4", help="output .mp4")
    engine: str | None = option(
        choices=ENGINES,
        shown="diffusion when a complete checkpoint is configured, else preview",
        groups=(ENGINE_OPTION, IDENTITY),
        help="which engine runs",
    )
    preset: str | None = option(
        choices=tuple(sorted(PRESETS)),
        shown="none",
        groups=(PER_REQUEST,),
        help="the guide's presets (explicit flags win)",
    )
    transcript: str | None = option(
        engines=("preview",),
        shown="none",
        groups=(PER_REQUEST, IDENTITY),
        help="what the speech says (exact lip timing by forced alignment)",
    )
    # several GPUs of different sizes: one budget per GPU (a multi-GPU run plans each worker for its own)
    gpu_memory: tuple[float, ...] | None = option(
        type=gib_list,
        engines=DIFFUSION,
        shown="what CUDA reports free on each",
        groups=(ENGINE_OPTION,),
        metavar="GIB[,GIB...]",
        help="GiB per GPU the memory planner fits the run into: one number for "
        "every GPU, or one per GPU in device order",
    )
    skip_checks: bool = option(False, kind="switch", help="do not stop on input-check errors")
    overwrite: bool = option(False, kind="switch", help="replace an existing output file")
    resume: bool = option(
        False, kind="switch", help="continue the interrupted run of --save_file (same arguments) where it stopped"
    )

    def resolve(self) -> GenerateConfig:
        """Fill unset values from the preset, then from each field's fallback, and validate."""
        preset = PRESETS[self.preset] if self.preset else None
        filled = {}
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is not None:
                continue
            if preset is not None and hasattr(preset, f.name):
                filled[f.name] = getattr(preset, f.name)
            elif f.metadata.get("fallback") is not None:
                filled[f.name] = f.metadata["fallback"]
        if self.base_seed == RANDOM_SEED:
            filled["base_seed"] = random.randrange(2**31)
        resolved = dataclasses.replace(self, **filled)
        resolved.validate()
        return resolved

    def given(self) -> list[str]:
        """Names of the options set to something other than their default (before :meth:`resolve`)."""
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.default is not dataclasses.MISSING and getattr(self, f.name) != f.default
        ]

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            check_value(f.name, getattr(self, f.name))


def check_value(name: str, value: Any) -> None:
    """UserError when option ``name`` cannot take ``value`` (``None``, "not given", always can).

    One place for the limits, so every front-end (generate, serve, doctor) refuses the same values."""
    if value is None:
        return
    if name == "size":
        parse_size(value)
    elif name == "num_clip" and value <= 0:
        raise UserError(
            "--num_clip",
            f"{value} clips requested",
            "give a positive number of clips, or leave it out to follow the audio",
        )
    elif name == "infer_frames" and value <= 0:
        raise UserError("--infer_frames", f"{value} frames per clip", "give a positive multiple of 4, e.g. 48")
    elif name == "infer_frames" and value % 4:
        raise UserError(
            "--infer_frames",
            f"{value} is not a multiple of 4",
            "give a positive multiple of 4 (one latent frame is 4 video frames), e.g. 48",
        )
    elif name == "sample_steps" and not 1 <= value <= MAX_SAMPLE_STEPS:
        raise UserError(
            "--sample_steps",
            f"{value} steps",
            f"give 1 to {MAX_SAMPLE_STEPS} steps (the distilled model uses {DISTILLED_STEPS})",
        )
    elif name == "base_seed" and not 0 <= value <= MAX_SEED and value != RANDOM_SEED:
        raise UserError(
            "--base_seed", f"{value} is outside 0..{MAX_SEED}", "give a seed from 0 to 2**63-1, or -1 for a random one"
        )
    elif name == "sample_shift" and value <= 0:
        raise UserError("--sample_shift", f"{value} is not positive", "give a positive shift, e.g. 3")
    elif name == "gpu_memory" and not all(v > 0 for v in (value if isinstance(value, (tuple, list)) else (value,))):
        raise UserError(
            "--gpu_memory", f"{value} GiB per GPU", "give the GPU memory to plan for in GiB, e.g. 24 or 24,24,80"
        )
    elif name == "num_gpus_dit" and value <= 0:
        raise UserError("--num_gpus_dit", f"{value} GPUs", "give a positive number of GPUs")
    elif name == "engine" and value not in ENGINES:
        raise UserError("--engine", f'"{value}" is not an engine', f"use one of: {', '.join(ENGINES)}")


def inert_flag_notes(config: GenerateConfig, engine: str, device: str) -> list[str]:
    """One ``note:`` line per reason for the flags given (``config`` before resolve) that do nothing here."""
    given = set(config.given())
    by_engine, by_device = [], []
    for f in dataclasses.fields(config):
        if f.name not in given:
            continue
        if engine not in f.metadata["engines"]:
            by_engine.append(f"--{f.name}")
        elif f.metadata["cuda_only"] and device != "cuda":
            by_device.append(f"--{f.name}")
    notes = []
    if by_engine:
        notes.append(
            f"note: {', '.join(by_engine)} {'does' if len(by_engine) == 1 else 'do'} nothing with the {engine} engine"
        )
    if by_device:
        notes.append(
            f"note: {', '.join(by_device)} {'does' if len(by_device) == 1 else 'do'} nothing on a {device.upper()} "
            "(needs a CUDA GPU)"
        )
    return notes


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
        """What the engine will use (``--dry_run`` prints it): the sampling settings only for diffusion."""
        out = {
            "engine": self.engine,
            "height": self.height,
            "width": self.width,
            "fps": self.fps,
            "frames_per_clip": self.frames_per_clip,
            "num_clips": self.num_clips,
            "num_frames": self.num_frames,
            "duration_s": round(self.duration_s, 3),
            "seed": self.seed,
        }
        if self.engine == "diffusion":
            out["sample_steps"] = self.sample_steps
            out["sample_shift"] = self.sample_shift
            out["timesteps"] = [round(t, 4) for t in self.timesteps or ()]
            out["enable_online_decode"] = self.enable_online_decode
        return out
