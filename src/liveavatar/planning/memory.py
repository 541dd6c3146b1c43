"""The memory planner: the GPU memory a run needs, component by component, from shapes alone.

A pure function of the shapes (the DiT's config.json, the output size, frames per clip, how many
denoising steps this GPU holds) and a budget; nothing is loaded. The engine, ``--dry_run`` and
the out-of-memory ladder all ask it, and nothing else estimates memory.

Three phases peak separately and the run's peak is the largest (plus the CUDA context):
* load: the DiT weights and the LoRA merge's transient (one module's fp32 delta); with fp8
  weights the bf16 weights are quantised one module at a time from host memory.
* encode: the DiT weights and whichever encoder visits the GPU (umT5-XXL 11 GB, wav2vec2).
* loop: weights, the step rings and sink (in the mode's form), the text context, the audio
  features, the VAE and the larger of one DiT call's activations and one decode pass.

Modes, tried in this order (fastest first); the first whose peak fits the budget wins. Each keeps
every earlier mode's savings. The guide's rungs (smaller size, fewer frames per clip) change the
video, so they are only offered before the first frame and never when the flag was given.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.engines.diffusion.runtime.caches import CacheForm, bytes_per_value
from liveavatar.errors import UserError

GIB = 2**30
MARGIN = 0.02  # share of the budget kept free for allocator slack (expandable segments: little)

# ---------------------------------------------------------------------------------------------------
# Calibration: the one place where measured figures enter the planner.
# Measured with `PYTHONPATH=src python3 benchmarks/bench_engine_gpu.py loop bf16 fp8 --clips 2`
# (one H100 80GB, torch 2.11.0+cu130, 2026-11-24, benchmarks/RESULTS.md): torch.cuda.max_memory_allocated
# of the real loop at 14B / 704*384 / 48 frames / 4 steps / text 120 tokens, decode 1 latent per
# pass (compiled): bf16 76.0 GiB, fp8 61.2 GiB. Both leave the same 4.3 GiB above the persistent
# terms below (71.68 / 56.84 GiB), whatever the weights' dtype, so the transient is the decode pass, not the DiT call (whose
# activations this formula puts near 1 GiB); DECODE_BYTES_PER_PIXEL_FRAME is that transient divided
# by the pixels of one pass (384 x 704 x 4 frames). Re-measure with benchmarks/bench_memory_gpu.py.
CALIBRATION = {
    "command": "PYTHONPATH=src python3 benchmarks/bench_engine_gpu.py loop bf16 fp8 --clips 2",
    "device": "NVIDIA H100 80GB HBM3",
    "measured_peak_gib": {"bf16": 76.0, "fp8": 61.2},
    "settings": {"size": "704*384", "frames_per_clip": 48, "steps": 4, "decode_latents_per_pass": 1},
}
DECODE_BYTES_PER_PIXEL_FRAME = 4310.0  # Wan2.1 VAE (dim 96), bf16, causal decode incl. its carried state
# one DiT call, per block token: the residual stream, norms, q/k/v and their roped copies, attention
# and cross-attention outputs, the fp32 modulation temporaries (~12 x dim values), and the FFN
# hidden state twice (before and after the GELU); per window token: the [ring; sink] K and V
# concatenations and the roped sink K (structural: below the decode term at 14B, so not calibrated)
ACT_VALUES_PER_BLOCK_TOKEN_DIM = 12
ACT_VALUES_PER_WINDOW_TOKEN_DIM = 5
CUDA_CONTEXT_BYTES = int(0.5 * GIB)  # torch + cuBLAS/cuDNN handles, outside torch's allocator
ENCODER_WORKING_BYTES = int(1.0 * GIB)  # umT5 over 512 tokens / wav2vec2 over a chunk of audio
WAV2VEC2_LARGE_PARAMS = 317_000_000  # wav2vec2-large-xlsr-53 (release constant, ~1 %)


@dataclass(frozen=True)
class Mode:
    """One way to run; later modes keep every earlier mode's savings."""

    name: str
    weights: str = "bf16"  # "bf16" (the model dtype) or "fp8" (upstream's exclusions kept in bf16)
    kv: CacheForm = CacheForm()
    text_encoder_on_gpu: bool = True  # False: umT5 encodes on the CPU, never beside the DiT
    decode_tiles: int = 1  # spatial tiles per decode pass (1 = the whole frame)
    size: str | None = None  # the guide's rungs: a smaller --size ...
    infer_frames: int | None = None  # ... or fewer frames per clip (change the video)

    @property
    def keeps_shape(self) -> bool:
        return self.size is None and self.infer_frames is None


_FP8 = CacheForm("fp8", "resident")
_STREAM = CacheForm("fp8", "host")
MODES: tuple[Mode, ...] = (
    Mode("bf16 resident"),
    Mode("fp8 weights", weights="fp8"),
    Mode("fp8 KV", weights="fp8", kv=_FP8),
    Mode("KV streamed from pinned host memory", weights="fp8", kv=_STREAM),
    Mode("text encoder on the CPU", weights="fp8", kv=_STREAM, text_encoder_on_gpu=False),
    Mode("smaller decode passes", weights="fp8", kv=_STREAM, text_encoder_on_gpu=False, decode_tiles=2),
)
GUIDE_SIZES = ("688*368", "384*256")  # the guide's smaller sizes, tried in order
GUIDE_FRAMES = (32, 24)


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

    @property
    def latent_hw(self) -> tuple[int, int]:
        return self.height // 8, self.width // 8

    def loop(self):
        """The block loop's own plan for these shapes (token counts come from one place)."""
        from liveavatar.engines.diffusion.runtime.loop import LoopPlan

        return LoopPlan(self.frames_per_clip, 1, self.latent_hw, self.steps, 1.0, 0)


@dataclass(frozen=True)
class Estimate:
    mode: Mode
    components: dict[str, int]  # bytes on the GPU, each term once
    phases: dict[str, int]  # bytes at each phase's peak (CUDA context not included)
    host_bytes: int = 0  # pinned host memory the mode needs (streamed rings)

    @property
    def peak(self) -> int:
        return max(self.phases.values()) + self.components["cuda_context"]

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=self.phases.get)

    def summary(self) -> dict:
        out = {"mode": self.mode.name, "peak_gib": round(self.peak / GIB, 2),
               "components": {k: round(v / GIB, 3) for k, v in self.components.items()},
               "peak_phase": self.peak_phase}
        if self.host_bytes:
            out["host_pinned_gib"] = round(self.host_bytes / GIB, 2)
        return out


# ---------------------------------------------------------------------------------------------------
# parameter counts from the real modules built on the meta device (exact, nothing allocated)
@functools.lru_cache(maxsize=8)
def dit_weight_bytes(config: DiTConfig, value_bytes: int, fp8: bool) -> tuple[int, int]:
    """(bytes of the DiT's weights, elements of its largest Linear) in bf16/fp32 or fp8."""
    import torch
    from torch import nn

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.fp8 import excluded

    model = CausalS2VDiT(config, dtype=torch.bfloat16, device="meta")
    total, largest = 0, 0
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if fp8 and type(module) is nn.Linear and not excluded(name):
            total += module.weight.numel() + 4  # e4m3 values + the fp32 scale
            total += 0 if module.bias is None else module.bias.numel() * value_bytes
        else:
            total += sum(p.numel() for p in own) * value_bytes
        if type(module) is nn.Linear:
            largest = max(largest, module.weight.numel())
    return total, largest


def rope_table_bytes(config: DiTConfig) -> int:
    """The cos/sin tables (fp32) of `rope.RopeTables`: temporal rows plus two 2048-row spatial axes."""
    from liveavatar.engines.diffusion.model.rope import axis_pairs

    pt, ph, pw = axis_pairs(config.head_dim)
    return 2 * 4 * (config.rope_max_positions * pt + 2048 * (ph + pw))


@functools.lru_cache(maxsize=8)
def _module_params(kind: str, shape: tuple) -> int:
    import torch

    if kind == "vae":
        from liveavatar.engines.diffusion.vae.vae import VAEConfig, WanVAE

        dim, mult = shape
        with torch.device("meta"):
            return sum(p.numel() for p in WanVAE(dataclasses.replace(VAEConfig.wan21(), dim=dim, dim_mult=mult)).parameters())
    from liveavatar.engines.diffusion.encoders.text_encoder import T5Config, T5Encoder

    with torch.device("meta"):
        return sum(p.numel() for p in T5Encoder(T5Config(*shape) if shape else T5Config.umt5_xxl()).parameters())


def estimate(work: Workload, mode: Mode) -> Estimate:
    """Every term in bytes, for one mode."""
    c, vb = work.dit, work.value_bytes
    fp8 = mode.weights == "fp8"
    weights, largest_linear = dit_weight_bytes(c, vb, fp8)
    weights += rope_table_bytes(c)
    from liveavatar.engines.diffusion.runtime.loop import BLOCK_LATENT_FRAMES

    loop = work.loop()
    per_value = bytes_per_value(mode.kv, vb, c.head_dim)
    per_token = 2 * c.num_layers * c.dim  # K and V, every layer
    ring = int(loop.ring_tokens * per_token * per_value)
    streamed = mode.kv.placement == "host"
    rings_gpu = int(2 * loop.ring_tokens * 2 * c.dim * per_value) if streamed else ring * work.steps
    sink = int(loop.sink_tokens * per_token * per_value)
    text_ctx = c.text_len * c.dim * (1 + 2 * c.num_layers) * vb
    audio = 25 * c.audio_dim * work.num_frames * vb
    n = BLOCK_LATENT_FRAMES * loop.tokens_per_frame
    window = loop.ring_tokens + loop.sink_tokens
    act = vb * (n * (ACT_VALUES_PER_BLOCK_TOKEN_DIM * c.dim + 2 * c.ffn_dim)
                + ACT_VALUES_PER_WINDOW_TOKEN_DIM * window * c.dim)
    if mode.kv.kv == "fp8":  # one layer's rows dequantised to the model dtype
        act += 2 * window * c.dim * vb
    vae = _module_params("vae", (work.vae_dim, work.vae_dim_mult)) * vb if work.holds_vae else 0
    from liveavatar.engines.diffusion.vae.tiles import DEFAULT_OVERLAP

    tile_width = (work.width + (mode.decode_tiles - 1) * DEFAULT_OVERLAP * 8) / mode.decode_tiles
    pixels = work.height * tile_width
    decode = int(DECODE_BYTES_PER_PIXEL_FRAME * (work.vae_dim / 96) * pixels * 4 * work.decode_latents_per_pass
                 * vb / 2) if work.holds_vae else 0
    t5 = _module_params("t5", work.t5_shape) * vb
    w2v = WAV2VEC2_LARGE_PARAMS * vb
    lora = largest_linear * (4 + 4 + vb) if work.lora else 0  # W.float(), the fp32 delta, the cast result
    if fp8:  # bf16 weights quantised module by module from host memory: one module in flight
        lora = largest_linear * (vb + 4 + 1)
    resident_encoders = (t5 + w2v) if work.encoders_resident else 0
    components = {
        "dit_weights": weights, "lora_merge_transient": lora, "kv_rings": rings_gpu, "sink": sink,
        "text_context": text_ctx, "audio_features": audio, "dit_activations": int(act), "vae_weights": vae,
        "vae_decode": decode,
        "umt5": t5 if (mode.text_encoder_on_gpu or work.encoders_resident) else 0,
        "wav2vec2": w2v, "cuda_context": CUDA_CONTEXT_BYTES,
    }
    phases = {
        "load": weights + lora + resident_encoders,
        "encode": weights + max(components["umt5"], w2v) + ENCODER_WORKING_BYTES + resident_encoders,
        "loop": weights + rings_gpu + sink + text_ctx + audio + vae + max(int(act), decode) + resident_encoders,
    }
    return Estimate(mode, components, phases, host_bytes=ring * work.steps if streamed else 0)


def _guide_modes(work: Workload, base: Mode, size_fixed: bool, frames_fixed: bool) -> list[Mode]:
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
                out.append(dataclasses.replace(base, name=f"{frames} frames per clip", infer_frames=frames,
                                               size=out[-1].size if out else None))
    return out


def candidate_modes(work: Workload, fp8_weights: bool = False, size_fixed: bool = True,
                    frames_fixed: bool = True) -> list[Mode]:
    """The modes the planner may take, in order; explicit flags remove the ones they rule out."""
    modes = [m for m in MODES if not (fp8_weights and m.weights != "fp8")]
    return modes + _guide_modes(work, modes[-1], size_fixed, frames_fixed)


def resize(work: Workload, mode: Mode) -> Workload:
    """The workload a guide rung gives (its size keeps the portrait's aspect only approximately)."""
    if mode.keeps_shape:
        return work
    from liveavatar.sizing import parse_size

    height, width = work.height, work.width
    if mode.size:
        w, h = parse_size(mode.size)
        scale = (w * h / (width * height)) ** 0.5
        height, width = int(height * scale) // 16 * 16, int(width * scale) // 16 * 16
    return dataclasses.replace(work, height=height, width=width, frames_per_clip=mode.infer_frames or work.frames_per_clip)


@dataclass(frozen=True)
class Choice:
    estimate: Estimate
    budget: int | None
    reason: str
    later: tuple[Mode, ...] = field(default=())  # the shape-keeping modes after it (the OOM ladder's rungs)

    @property
    def mode(self) -> Mode:
        return self.estimate.mode

    def summary(self) -> dict:
        out = self.estimate.summary()
        if self.budget is not None:
            out["budget_gib"] = round(self.budget / GIB, 2)
        return out


def fits(est: Estimate, budget: int) -> bool:
    return est.peak <= budget * (1 - MARGIN)


def choose(work: Workload, budget: int | None, fp8_weights: bool = False, size_fixed: bool = True,
           frames_fixed: bool = True, budget_source: str = "--gpu_memory") -> Choice:
    """The first mode that fits `budget` (bytes per GPU; None: no limit known), or a UserError."""
    modes = candidate_modes(work, fp8_weights, size_fixed, frames_fixed)
    estimates = [estimate(resize(work, m), m) for m in modes]
    first = estimates[0]
    if budget is None:
        return Choice(first, None, f"no GPU memory budget known ({budget_source}); predicted peak "
                      f"{first.peak / GIB:.1f} GiB", tuple(m for m in modes[1:] if m.keeps_shape))
    for i, est in enumerate(estimates):
        if fits(est, budget):
            why = "the fastest mode" if i == 0 else f"{estimates[i - 1].mode.name} needs {estimates[i - 1].peak / GIB:.1f} GiB"
            reason = (f"{est.peak / GIB:.1f} GiB predicted of {budget / GIB:.1f} GiB ({budget_source}); {why}")
            return Choice(est, budget, reason, tuple(m for m in modes[i + 1:] if m.keeps_shape))
    need = min(e.peak for e in estimates) / (1 - MARGIN)
    raise UserError("--gpu_memory", f"no memory mode fits {budget / GIB:.1f} GiB per GPU for "
                    f"{work.width}x{work.height}, {work.frames_per_clip} frames per clip, {work.steps} steps "
                    f"(smallest: {need / GIB:.1f} GiB)",
                    f"use a GPU with at least {need / GIB:.1f} GiB free, or fewer --sample_steps")


def cuda_budget() -> int | None:
    """What CUDA reports free plus the context this process already holds; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return free + CUDA_CONTEXT_BYTES


def gpu_table(config: DiTConfig, height: int = 384, width: int = 704, frames: int = 48, steps: int = 4,
              cards_gib: tuple[int, ...] = (80, 48, 24)) -> list[tuple[int, str, float]]:
    """(card GiB, chosen mode, predicted peak GiB) for the README's "Which GPU do I need?" table."""
    work = Workload(config, height, width, frames, steps, num_frames=1250)
    rows = []
    for card in cards_gib:
        try:
            ch = choose(work, card * GIB)
            rows.append((card, ch.mode.name, round(ch.estimate.peak / GIB, 1)))
        except UserError:
            rows.append((card, "does not fit", float("nan")))
    return rows


def read_dit_config(ckpt_dir) -> DiTConfig | None:
    """The DiT's shapes from ``ckpt_dir/config.json`` (all the dry run needs), or None when absent."""
    from pathlib import Path

    from liveavatar.engines.diffusion.loading.layout import DIT_CONFIG, read_config

    return read_config(Path(ckpt_dir)) if (Path(ckpt_dir) / DIT_CONFIG).is_file() else None


def plan_for_run(config, plan, dit: DiTConfig, explicit: tuple[str, ...] = ("size", "infer_frames")) -> Choice:
    """The memory choice for a resolved GenerateConfig and its Plan; `explicit` names the shape
    flags the user gave (size, infer_frames), which the guide's rungs never override."""
    budget = int(config.gpu_memory * GIB) if config.gpu_memory is not None else cuda_budget()
    source = "--gpu_memory" if config.gpu_memory is not None else "free CUDA memory" if budget else "no CUDA, no --gpu_memory"
    workers = max(1, config.num_gpus_dit)
    work = Workload(dit, plan.height, plan.width, plan.frames_per_clip, -(-plan.sample_steps // workers),
                    num_frames=plan.num_clips * plan.frames_per_clip, encoders_resident=config.offload_model is False)
    return choose(work, budget, fp8_weights=bool(config.fp8), size_fixed="size" in explicit,
                  frames_fixed="infer_frames" in explicit, budget_source=source)


def finish_command(config, plan_width: int, plan_height: int) -> str:
    """The one command that would make the whole video in less memory: the same run at the guide's
    next smaller size (the finished part stays in the .partial.mp4 beside the output)."""
    import shlex

    from liveavatar.sizing import parse_size

    area = plan_width * plan_height
    smaller = [s for s in GUIDE_SIZES if parse_size(s)[0] * parse_size(s)[1] < area]
    from liveavatar.config import IDENTITY, in_group

    args = ["liveavatar", "generate"]
    shape = {"size": smaller[0] if smaller else config.size, "infer_frames": config.infer_frames if smaller else 24}
    for name in (*in_group(IDENTITY), "save_file"):  # everything that makes the video, at the smaller shape
        value = shape[name] if name in shape else getattr(config, name)
        if value is not None and value != "":
            args += [f"--{name}", str(value)]
    return shlex.join(args + ["--overwrite"])
