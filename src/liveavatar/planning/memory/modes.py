"""The memory modes, by name, fastest first; each keeps every earlier mode's savings.

The guide's rungs (smaller size, fewer frames per clip) change the video, so they are only
offered before the first frame and never when the flag was given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from liveavatar.engines.diffusion.runtime.caches import RESIDENT, CacheForm


@dataclass(frozen=True)
class Mode:
    """One way to run; later modes keep every earlier mode's savings."""

    name: str
    weights: str = "bf16"  # "bf16" (the model dtype) or "fp8" (upstream's exclusions kept in bf16)
    kv: CacheForm = RESIDENT
    text_encoder_on_gpu: bool = True  # False: umT5 encodes on the CPU, never beside the DiT
    decode_tiles: int = 1  # spatial tiles per decode pass (1 = the whole frame)
    size: str | None = None  # the guide's rungs: a smaller --size ...
    infer_frames: int | None = None  # ... or fewer frames per clip (change the video)

    @property
    def keeps_shape(self) -> bool:
        return self.size is None and self.infer_frames is None


_FP8 = CacheForm("fp8", "resident")
_STREAM = CacheForm("fp8", "host")
BF16_RESIDENT = Mode("bf16 resident")
FP8_WEIGHTS = Mode("fp8 weights", weights="fp8")
FP8_KV = Mode("fp8 KV", weights="fp8", kv=_FP8)
KV_STREAMED = Mode("KV streamed from pinned host memory", weights="fp8", kv=_STREAM)
TEXT_ON_CPU = Mode("text encoder on the CPU", weights="fp8", kv=_STREAM, text_encoder_on_gpu=False)
DECODE_TILED = Mode("smaller decode passes", weights="fp8", kv=_STREAM, text_encoder_on_gpu=False, decode_tiles=2)
MODES: tuple[Mode, ...] = (BF16_RESIDENT, FP8_WEIGHTS, FP8_KV, KV_STREAMED, TEXT_ON_CPU, DECODE_TILED)
GUIDE_SIZES = ("688*368", "384*256")  # the guide's smaller sizes, tried in order
GUIDE_FRAMES = (32, 24)


def mode_named(name: str) -> Mode:
    """The shape-keeping mode called `name` (KeyError names the known ones)."""
    for mode in MODES:
        if mode.name == name:
            return mode
    raise KeyError(f"no memory mode {name!r}; known: {', '.join(m.name for m in MODES)}")


def default_mode(fp8_weights: bool) -> Mode:
    """The mode an engine runs in when the planner did not choose (the weights as loaded)."""
    return FP8_WEIGHTS if fp8_weights else BF16_RESIDENT


def modes_after(mode: Mode) -> tuple[Mode, ...]:
    """The shape-keeping modes after `mode` (the out-of-memory ladder's rungs)."""
    return MODES[MODES.index(mode) + 1 :] if mode in MODES else ()


def _guide_modes(work, base: Mode, size_fixed: bool, frames_fixed: bool) -> list[Mode]:
    from liveavatar.sizing import parse_size

    area = work.height * work.width
    out = []
    if not size_fixed:
        for size in GUIDE_SIZES:
            w, h = parse_size(size)
            if w * h < area:
                out.append(dataclasses.replace(base, name=f"smaller size {size}", size=size))
    if not frames_fixed:
        for frames in GUIDE_FRAMES:
            if frames < work.frames_per_clip:
                out.append(
                    dataclasses.replace(
                        base, name=f"{frames} frames per clip", infer_frames=frames, size=out[-1].size if out else None
                    )
                )
    return out


def candidate_modes(work, fp8_weights: bool = False, size_fixed: bool = True, frames_fixed: bool = True) -> list[Mode]:
    """The modes the planner may take for Workload `work`, in order; explicit flags remove the ones they rule out."""
    modes = [m for m in MODES if not (fp8_weights and m.weights != "fp8")]
    return modes + _guide_modes(work, modes[-1], size_fixed, frames_fixed)
