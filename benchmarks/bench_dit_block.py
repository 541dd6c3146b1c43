"""GPU timing of the streaming DiT at 14B shapes with random weights (no checkpoint needed).

704*384 output (latent 48x88, P=1056), 3 latent frames per block, a KV ring of 4 blocks
(12672 tokens) + 2640 sink tokens, bf16. Prints ms per denoise_block call (one step of one block),
the sink prefill time and peak GPU memory.

    PYTHONPATH=src python benchmarks/bench_dit_block.py [--layers 40] [--calls 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time


def main() -> int:
    import torch

    from liveavatar.engines.diffusion.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.dit_config import DiTConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=40)
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()
    dev = torch.device("cuda")
    cfg = DiTConfig.wan_s2v_14b()
    if args.layers != cfg.num_layers:
        cfg = dataclasses.replace(cfg, num_layers=args.layers,
                                  audio_inject_layers=tuple(i for i in cfg.audio_inject_layers if i < args.layers))
    t = time.perf_counter()
    model = CausalS2VDiT(cfg, dtype=torch.bfloat16, device="meta")
    model.to_empty(device=dev)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0, 0.02 if p.dim() > 1 else 0.01)
    torch.cuda.synchronize()
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"model {cfg.num_layers} layers built + random init on GPU in {time.perf_counter() - t:.1f} s, "
          f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB")
    h, w, frames = 48, 88, 3
    p_tok = (h // 2) * (w // 2)
    block = frames * p_tok
    sink, caches = model.new_caches(1, ring_tokens=4 * block, sink_tokens=2800)
    g = torch.Generator(device=dev).manual_seed(0)
    text = model.encode_text(torch.randn(64, cfg.text_dim, device=dev, generator=g, dtype=torch.bfloat16))
    ref = torch.randn(1, 16, 1, h, w, device=dev, generator=g, dtype=torch.bfloat16)
    motion = torch.randn(1, 16, 19, h, w, device=dev, generator=g, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.prefill_sink(sink, ref, motion, text)
    torch.cuda.synchronize()
    print(f"prefill_sink ({sink.length} tokens): {(time.perf_counter() - t) * 1e3:.1f} ms")
    x = torch.randn(1, 16, frames, h, w, device=dev, generator=g, dtype=torch.bfloat16)
    audio = torch.randn(1, 25, cfg.audio_dim, 4 * frames, device=dev, generator=g, dtype=torch.bfloat16)
    rng = random.Random(0)
    times = []
    for b in range(args.calls + 2):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.denoise_block(caches[0], x, 857.69, text, audio, None, current_start=b * block, rng=rng)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    assert torch.isfinite(out).all()
    steady = times[2:]
    print(f"denoise_block (block {block} tokens, ring {caches[0].ring_tokens} + sink {sink.length}): "
          f"first {times[0] * 1e3:.0f} ms, steady mean {sum(steady) / len(steady) * 1e3:.1f} ms, "
          f"min {min(steady) * 1e3:.1f} ms over {len(steady)} calls (blocks wrap the ring after 4)")
    print(f"per block of 4 steps: {4 * sum(steady) / len(steady) * 1e3:.0f} ms -> "
          f"{12 / (4 * sum(steady) / len(steady)):.1f} video frames/s (12 frames per block)")
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
