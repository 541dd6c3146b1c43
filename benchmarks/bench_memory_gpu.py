"""The 24 GB single-GPU mode against the unconstrained fp8 mode, in one process, with the planner's
prediction beside each measured peak.

14B random weights at 704*384, 4 steps, per-step KV rings, rolling sink, streaming decode, uint8
frames to the host (what a user's run does per block). Two runs on the same DiT (fp8 linears):
  1. unconstrained: the planner's "fp8 weights" mode (bf16 KV rings resident);
  2. capped: ``torch.cuda.set_per_process_memory_fraction`` so the process may use --cap_gib
     (default 24) GiB, in the mode the planner picks for that budget (KV streamed from pinned host
     memory, text encoder off the GPU, tiled decode when needed).
Printed per run: s/block (median of the blocks after the first two), video fps, max_memory_allocated,
max_memory_reserved, the planner's predicted loop peak; then the speed ratio capped / unconstrained.

    PYTHONPATH=src python3 benchmarks/bench_memory_gpu.py --clips 2
    PYTHONPATH=src python3 benchmarks/bench_memory_gpu.py --tiny --clips 2   # any device: a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as the engine
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

GIB = 2**30


def run_mode(dit, vae, mode, work, clips: int, device, overlap: bool = False) -> dict:
    """``overlap``: block n decodes while block n+1 denoises, as the engine does on CUDA."""
    from liveavatar.engines.diffusion.encoders.conditioning import frames_to_uint8
    from liveavatar.engines.diffusion.latents import LATENT_CHANNELS
    from liveavatar.engines.diffusion.runtime.loop import LoopPlan, StepCaches, denoise_blocks
    from liveavatar.engines.diffusion.runtime.overlap import consume_side, decode_side, run_blocks
    from liveavatar.engines.diffusion.vae.tiles import TiledStreamingDecoder
    from liveavatar.engines.diffusion.vae.vae import StreamingDecoder
    from liveavatar.planning.memory import estimate

    cuda = device.type == "cuda"
    h, w = work.latent_hw
    plan = LoopPlan.for_size(work.height, work.width, work.frames_per_clip, work.steps, num_clips=clips)
    dtype = dit.dtype
    text = dit.encode_text(torch.randn(min(120, dit.config.text_len), dit.config.text_dim, device=device))
    audio = torch.randn(1, 25, dit.config.audio_dim, clips * plan.frames_per_clip, device=device, dtype=dtype)
    ref = torch.randn(1, LATENT_CHANNELS, 1, h, w, device=device, dtype=dtype)
    motion = torch.randn(1, LATENT_CHANNELS, 19, h, w, device=device, dtype=dtype)
    per_pass = 1 if cuda else 0
    decoder = (
        TiledStreamingDecoder(vae, mode.decode_tiles, latents_per_pass=per_pass, compile=cuda)
        if mode.decode_tiles > 1
        else StreamingDecoder(vae, latents_per_pass=per_pass, compile=cuda)
    )
    with decode_side(overlap, motion):
        decoder.decode_next(motion[:, :, :7])
    caches = StepCaches.allocate(dit, plan, tuple(range(plan.sample_steps)), mode=mode.kv)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, t_prev = [], time.perf_counter()
    blocks = denoise_blocks(dit, text, audio, ref, motion, plan, caches=caches)
    for block, (_, ready) in run_blocks(blocks, lambda: None, overlap):
        with consume_side(ready, block.latents):
            frames_to_uint8(decoder.decode_next(block.latents))  # host copy: a synchronisation point
        now = time.perf_counter()
        times.append(now - t_prev)
        t_prev = now
    steady = sorted(times[2:])[len(times[2:]) // 2] if len(times) > 3 else times[-1]
    est = estimate(work, mode)
    out = {
        "mode": mode.name,
        "blocks": len(times),
        "s_per_block": steady,
        "fps": 4 * 3 / steady,
        "first_block_s": times[0],
        "predicted_loop_gib": est.phases["loop"] / GIB,
        "predicted_peak_gib": est.peak / GIB,
    }
    if cuda:
        out["max_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
        out["max_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    del caches, decoder
    return out


def main() -> None:
    from bench_dit_gpu import init_random
    from liveavatar.engines.diffusion.loading.precision import model_dtype
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8
    from liveavatar.engines.diffusion.vae.vae import VAEConfig, build_vae
    from liveavatar.planning.memory import FP8_WEIGHTS, Workload, choose

    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--cap_gib", type=float, default=24.0)
    ap.add_argument("--tiny", action="store_true", help="tiny DiT/VAE at 128x128 (smoke run on any device)")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device {name}, torch {torch.__version__}", flush=True)
    config = DiTConfig.tiny() if args.tiny else DiTConfig.wan_s2v_14b()
    height, width = (128, 128) if args.tiny else (384, 704)
    vae_config = VAEConfig(dim=4) if args.tiny else VAEConfig.wan21()
    dtype = model_dtype(device)
    torch.manual_seed(0)
    dit = CausalS2VDiT(config, dtype=dtype, device="meta")
    dit.to_empty(device=device)
    init_random(dit, torch)
    dit._rope = None
    quantize_linears_fp8(dit)
    if device.type == "cuda" and not args.tiny:
        dit.accelerate(compile=True)
    vae = build_vae(vae_config, device=device, dtype=dtype)
    work = Workload(
        config,
        height,
        width,
        48,
        4,
        num_frames=args.clips * 48,
        lora=False,
        value_bytes=torch.finfo(dtype).bits // 8,
        vae_dim=vae_config.dim,
    )
    results = [run_mode(dit, vae, FP8_WEIGHTS, work, args.clips, device)]
    capped = choose(work, int(args.cap_gib * GIB), fp8_weights=True)
    print(f"planner for {args.cap_gib} GiB: {capped.mode.name} ({capped.reason})", flush=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * GIB / total), device)
    results.append(run_mode(dit, vae, capped.mode, work, args.clips, device))
    for r in results:
        print(
            "RESULT " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v!r}" for k, v in r.items()),
            flush=True,
        )
    print(
        f"capped / unconstrained speed: {results[0]['s_per_block'] / results[1]['s_per_block']:.2f}x "
        f"(target >= 0.8), capped peak allocated "
        f"{results[1].get('max_allocated_gib', float('nan')):.1f} GiB (target <= 22)",
        flush=True,
    )


if __name__ == "__main__":
    main()
