"""Timestep-forcing pipeline parallelism: the per-step time and the cost of moving a block between workers.

Measures, on whatever machine runs it (CUDA + NCCL when two GPUs are visible, else the CPU + gloo):
- one ``denoise_block`` call (one denoising step of one block) of a DiT of the given width/depth;
- a block's latents sent from one process to another and back (the round trip halved);
then prints the throughput that K workers would give from these two figures (computed, not measured
end to end). Example (this project's CPU box): ``PYTHONPATH=src python benchmarks/bench_tpp.py``.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import timedelta


def _pingpong(rank: int, port: int, backend: str, shape: tuple, dtype_name: str, rounds: int) -> None:
    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(rank)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    store = dist.TCPStore("127.0.0.1", port, 2, False, timeout=timedelta(seconds=120))
    dist.init_process_group(backend, store=store, rank=rank, world_size=2, timeout=timedelta(seconds=120))
    x = torch.randn(shape, device=device).to(getattr(torch, dtype_name))
    for i in range(rounds + 3):  # 3 untimed warm-up rounds
        if i == 3:
            dist.barrier()
            start = time.perf_counter()
        if rank == 0:
            dist.send(x, dst=1)
            dist.recv(x, src=1)
        else:
            dist.recv(x, src=0)
            dist.send(x, dst=0)
    if backend == "nccl":
        torch.cuda.synchronize()
    if rank == 0:
        store.set("oneway_ms", str((time.perf_counter() - start) / rounds / 2 * 1000))
    dist.barrier()
    dist.destroy_process_group()


def send_cost_ms(backend: str, shape: tuple, dtype_name: str, rounds: int) -> float:
    import torch.distributed as dist
    import torch.multiprocessing as mp

    store = dist.TCPStore("127.0.0.1", 0, 2, True, wait_for_workers=False, timeout=timedelta(seconds=120))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_pingpong, args=(r, store.port, backend, shape, dtype_name, rounds)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    return float(store.get("oneway_ms"))


def step_time_s(dim: int, layers: int, latent_hw: tuple[int, int], device: str, dtype, calls: int) -> float:
    import dataclasses

    import torch

    from liveavatar.engines.diffusion.latents import LATENT_CHANNELS
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.runtime.loop import LoopPlan, StepCaches

    base = DiTConfig.tiny()
    config = dataclasses.replace(
        base,
        dim=dim,
        ffn_dim=dim * 27 // 10,
        num_layers=layers,
        num_heads=max(1, dim // 128) if dim >= 128 else base.num_heads,
        text_len=16,
    )
    dit = CausalS2VDiT(config, dtype=dtype, device=device).eval()
    plan = LoopPlan(frames_per_clip=48, num_clips=1, latent_hw=latent_hw, sample_steps=1, sample_shift=3.0, seed=0)
    caches = StepCaches.allocate(dit, plan, (0,))
    h, w = latent_hw
    text = dit.encode_text(torch.randn(5, config.text_dim, device=device))
    ref, motion = (
        torch.randn(1, LATENT_CHANNELS, 1, h, w, device=device),
        torch.randn(1, LATENT_CHANNELS, 19, h, w, device=device),
    )
    audio = torch.randn(1, 25, config.audio_dim, 12, device=device)
    x = torch.randn(1, LATENT_CHANNELS, 3, h, w, device=device, dtype=dtype)
    times = []
    with torch.no_grad():
        dit.prefill_sink(caches.sink, ref, motion, text)
        for i in range(calls + 1):
            start = time.perf_counter()
            dit.denoise_block(
                caches.by_step[0], x, 500.0, text, audio, None, i * 3 * plan.tokens_per_frame, relative_dist=0
            )
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    import torch

    from liveavatar.engines.diffusion import latents
    from liveavatar.engines.diffusion.loading.precision import model_dtype

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256, help="DiT width (14B: 5120)")
    parser.add_argument("--layers", type=int, default=4, help="DiT depth (14B: 40)")
    parser.add_argument("--size", default="176*96", help='"W*H" of the video (14B run: 704*384)')
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument(
        "--decode_s", type=float, default=0.0, help="decode time per block to include (H100 compiled: 0.115)"
    )
    args = parser.parse_args()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = "cuda" if gpus else "cpu"
    dtype = model_dtype(device)
    width, height = (int(v) for v in args.size.split("*"))
    latent_hw = latents.latent_hw(height, width)
    machine = (
        torch.cuda.get_device_name(0)
        if gpus
        else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    step = step_time_s(args.dim, args.layers, latent_hw, device, dtype, args.calls)
    backend = "nccl" if gpus >= 2 else "gloo"
    shape = (1, latents.LATENT_CHANNELS, 3, *latent_hw)
    send = send_cost_ms(backend, shape, "bfloat16" if gpus else "float32", args.rounds)
    kib = latents.LATENT_CHANNELS * 3 * latent_hw[0] * latent_hw[1] * (2 if gpus else 4) / 1024
    print(f"machine: {machine}; torch {torch.__version__}; DiT dim {args.dim} x {args.layers} layers at {args.size}")
    print(f"one denoising step of one block: {step * 1000:.1f} ms (median of {args.calls})")
    print(
        f"one block's latents ({kib:.0f} KiB) from one worker to the next over {backend}: {send:.3f} ms "
        f"({send / 1000 / step * 100:.2f} % of a step)"
    )
    print("computed from these two figures (not measured end to end), 4 steps, 12 frames per block:")
    for k in (1, 2, 3, 4):
        groups = [4 // k + (1 if i < 4 % k else 0) for i in range(k)]
        stage = max(groups) * step + (send / 1000 if k > 1 else 0)
        last = groups[-1] * step + args.decode_s + (send / 1000 if k > 1 else 0)
        print(
            f"  K={k}: stages {'+'.join(map(str, groups))} steps; with a decode worker {12 / max(stage, args.decode_s):.2f} fps, "
            f"last rank decoding {12 / max(stage, last):.2f} fps; first frame after {4 * step + (k - 1) * send / 1000 + args.decode_s:.3f} s"
        )


if __name__ == "__main__":
    main()
