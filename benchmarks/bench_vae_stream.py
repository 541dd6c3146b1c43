"""Streaming VAE decode vs. re-decoding with context, per block of 3 latents (12 frames).

Streaming keeps the causal caches between blocks (upstream TPP's VAE rank); re-decoding decodes
``context + block`` latents from scratch for every block and keeps the block's frames (the
single-GPU online-decode way, with a shorter context). Random weights; only the timing matters.

    .venv/bin/python benchmarks/bench_vae_stream.py                      # small CPU config
    .venv/bin/python benchmarks/bench_vae_stream.py --dim 96 --height 384 --width 704 \
        --device cuda --dtype bf16 --compile                             # the real size on a GPU
"""

from __future__ import annotations

import argparse
import platform
import time


def main() -> None:
    import torch

    from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, VAEConfig, build_vae

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=16, help="VAE base width (96 in the release)")
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=176)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--context", type=int, default=7, help="latents re-decoded before each block")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the streaming decoder")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    device = torch.device(args.device)
    vae = build_vae(VAEConfig(dim=args.dim), device, dtype)
    h, w = args.height // 8, args.width // 8
    gen = torch.Generator().manual_seed(0)
    warm = torch.randn(1, 16, args.context, h, w, generator=gen).to(device)
    blocks = [torch.randn(1, 16, 3, h, w, generator=gen).to(device) for _ in range(args.blocks)]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> tuple[float, torch.Tensor]:
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - start, out

    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"machine: {machine}; torch {torch.__version__}; dim {args.dim}, {args.height}x{args.width}, {args.dtype}, compile={args.compile}"
    )
    results = {}
    outputs = {}
    for per_pass in (0, 1):
        stream = StreamingDecoder(vae, latents_per_pass=per_pass, compile=args.compile)
        stream.decode_next(warm)  # the upstream warm-up: context latents of the reference
        stream.decode_next(blocks[0])  # a first block, so that compilation is not timed
        times, frames = [], []
        for block in blocks[1:]:
            seconds, out = timed(lambda b=block, s=stream: s.decode_next(b))
            assert out.shape[2] == 12
            times.append(seconds)
            frames.append(out)
        label = "stream, 3 latents per pass" if per_pass == 0 else "stream, 1 latent per pass"
        results[label] = times
        outputs[per_pass] = torch.cat(frames, dim=2).float()
    print(f"max |3-per-pass - 1-per-pass| over the timed frames: {(outputs[0] - outputs[1]).abs().max().item():.2e}")
    if args.compile:
        eager = StreamingDecoder(vae)
        eager.decode_next(warm)
        eager.decode_next(blocks[0])
        reference = torch.cat([eager.decode_next(b) for b in blocks[1:]], dim=2).float()
        print(f"max |compiled - eager|: {(outputs[0] - reference).abs().max().item():.2e}")
    times = []
    history = [warm[:, :, i : i + 1] for i in range(args.context)]
    for block in blocks[1:]:
        context = torch.cat(history[-args.context :] + [block], dim=2)
        seconds, frames = timed(lambda c=context: vae.decode(c, latents_per_pass=0)[:, :, -12:])
        times.append(seconds)
        history += [block[:, :, i : i + 1] for i in range(3)]
    results[f"re-decode {args.context} context + 3 latents"] = times
    for label, values in results.items():
        ms = [1000 * v for v in values]
        print(f"{label:36s} per block (12 frames): median {sorted(ms)[len(ms) // 2]:8.1f} ms, min {min(ms):8.1f} ms")


if __name__ == "__main__":
    main()
