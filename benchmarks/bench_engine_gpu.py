"""The diffusion engine on one GPU: (1) the whole engine on a tiny release (CUDA code path, compile,
offload, fp8), (2) the real generation loop at the 14B / 704*384 shapes with random weights:
denoise_blocks (4 steps, per-step KV rings, rolling sink) + streaming VAE decode + uint8 frames,
timed per 12-frame block as a user's run would be.

    PYTHONPATH=src python benchmarks/bench_engine_gpu.py tiny
    PYTHONPATH=src python benchmarks/bench_engine_gpu.py loop fp8 bf16 --clips 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as the engine
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))


def tiny_engine_checks() -> None:
    from liveavatar.config import GenerateConfig
    from liveavatar.engines.base import Inputs
    from liveavatar.engines.diffusion.engine import DiffusionEngine
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.planning import make_plan
    from liveavatar.planning.fit import unplanned
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    ckpt, lora = write_tiny_checkpoint(Path(tempfile.mkdtemp()))
    t = np.arange(int(3.0 * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    inputs = Inputs("a person talking", image, audio, 16000, Path("x"), Path("y"))
    results = {}
    for label, env, kw in [
        ("compiled", "true", {}),
        ("eager", "false", {}),
        ("offload", "true", {"offload_model": True}),
        ("fp8", "true", {"fp8": True}),
    ]:
        os.environ["ENABLE_COMPILE"] = env
        cfg = GenerateConfig(
            image=Path("x"),
            audio=Path("y"),
            prompt="a person talking",
            size="256*256",
            ckpt_dir=ckpt,
            lora_path_dmd=lora,
            infer_frames=24,
            **kw,
        ).resolve()
        engine = DiffusionEngine.from_config(cfg, resolve_layout(ckpt, lora), unplanned(bool(cfg.fp8)))
        plan = make_plan(cfg, inputs, "diffusion")
        t0 = time.perf_counter()
        frames = np.concatenate(list(engine.generate(inputs, plan, print)))
        results[label] = frames
        print(
            f"tiny {label:9s}: {frames.shape} frames in {time.perf_counter() - t0:.1f} s, expected {plan.num_frames}, "
            f"device {engine.device}, mean {frames.mean():.1f}, std {frames.std():.1f}",
            flush=True,
        )
        assert frames.shape[0] == plan.num_frames
        del engine
        torch.cuda.empty_cache()
    for label in ("eager", "offload", "fp8"):
        diff = np.abs(results[label].astype(int) - results["compiled"].astype(int))
        print(f"tiny {label} vs compiled: mean |diff| {diff.mean():.2f} (uint8 levels), max {diff.max()}")


def loop_bench(variant: str, clips: int) -> None:
    from bench_dit_gpu import init_random
    from liveavatar.engines.diffusion.encoders.conditioning import frames_to_uint8
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8
    from liveavatar.engines.diffusion.runtime.loop import LoopPlan, denoise_blocks
    from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, VAEConfig, build_vae

    torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    dit = CausalS2VDiT(DiTConfig.wan_s2v_14b(), dtype=torch.bfloat16, device="meta")
    dit.to_empty(device="cuda")
    init_random(dit, torch)
    dit._rope = None
    if variant == "fp8":
        quantize_linears_fp8(dit)
    dit.accelerate(compile=True)
    vae = build_vae(VAEConfig.wan21(), device="cuda", dtype=torch.bfloat16)
    h, w = 48, 88
    plan = LoopPlan(frames_per_clip=48, num_clips=clips, latent_hw=(h, w), sample_steps=4, sample_shift=3.0, seed=0)
    text = dit.encode_text(torch.randn(120, 4096, device="cuda"))
    audio = torch.randn(1, 25, 1024, clips * 48, device="cuda", dtype=torch.bfloat16)
    ref = torch.randn(1, 16, 1, h, w, device="cuda", dtype=torch.bfloat16)
    motion = torch.randn(1, 16, 19, h, w, device="cuda", dtype=torch.bfloat16)
    decoder = StreamingDecoder(vae, latents_per_pass=1, compile=True)  # as the engine on CUDA
    decoder.decode_next(motion[:, :, :7])
    times, frames_out = [], 0
    torch.cuda.synchronize()
    t_prev = time.perf_counter()
    for block in denoise_blocks(dit, text, audio, ref, motion, plan):
        frames = frames_to_uint8(decoder.decode_next(block.latents))  # host copy: a synchronisation point
        frames_out += len(frames)
        now = time.perf_counter()
        times.append(now - t_prev)
        t_prev = now
        assert np.isfinite(frames.astype(np.float32)).all()
    steady = sorted(times[2:])[len(times[2:]) // 2] if len(times) > 3 else times[-1]
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(
        f"loop {variant}: blocks {len(times)}, frames {frames_out}, first block {times[0]:.1f} s (compile), "
        f"steady median {steady:.3f} s/block = {12 / steady:.1f} fps, all {[round(x, 3) for x in times]}, peak {peak:.1f} GiB",
        flush=True,
    )
    print(
        f"RESULT loop-{variant} s_per_block={steady:.3f} fps={12 / steady:.2f} peak_gib={peak:.1f} ratio_vs_upstream_best={1.26 / steady:.2f}"
    )
    del dit, vae, decoder
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["tiny", "loop", "all"])
    parser.add_argument("variants", nargs="*", default=["fp8"])
    parser.add_argument("--clips", type=int, default=2)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    if args.what in ("tiny", "all"):
        tiny_engine_checks()
    if args.what in ("loop", "all"):
        for v in args.variants:
            try:
                loop_bench(v, args.clips)
            except torch.OutOfMemoryError as exc:
                print(f"loop {v}: out of memory ({str(exc).splitlines()[0]})")
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
