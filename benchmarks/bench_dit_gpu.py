"""The diffusion engine's speed options on one GPU at the real 14B / 704*384 shapes, random weights.

DiT: latent 48x88 (P = 1056), 3 latent frames per block, 4 denoising steps each with its own KV
cache (ring 12672 tokens, full window), sink 2640 tokens, text 512 tokens. Per variant: seconds per
12-frame block (4 denoise_block calls), video fps, peak GPU memory, the first block's time (with
compilation), and the relative error of one denoise_block output against the eager bf16 path on
the same inputs and cache contents. VAE: Wan2.1 streaming decode, 3 latents -> 12 frames.

    PYTHONPATH=src python benchmarks/bench_dit_gpu.py dit bf16-eager bf16-split bf16-compile fp8-compile
    PYTHONPATH=src python benchmarks/bench_dit_gpu.py vae eager compile
Variants: bf16-eager (reference path), bf16-split, bf16-compile, bf16-compile-cat, fp8-eager,
fp8-compile, fp8-compile-cat (compile: both halves of every layer and the audio injections).
``--json FILE`` appends one JSON line per result.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback

H, W, FRAMES = 48, 88, 3
STEP_T = (1000.0, 937.5, 833.3, 625.0)  # four timesteps (values only shape the modulation)
VARIANTS = {  # name -> (fp8, compile, split_sink)
    "bf16-eager": (False, False, False),
    "bf16-split": (False, False, True),
    "bf16-compile": (False, True, True),
    "bf16-compile-cat": (False, True, False),
    "fp8-eager": (True, False, True),
    "fp8-compile": (True, True, True),
    "fp8-compile-cat": (True, True, False),
}


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def init_random(model, torch) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0, 0.02 if p.dim() > 1 else 0.01)


def build(cfg, dtype, torch, seed=0):
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT

    torch.manual_seed(seed)
    model = CausalS2VDiT(cfg, dtype=dtype, device="meta")
    model.to_empty(device="cuda")
    init_random(model, torch)
    return model


def fp32_vs_bf16(torch, emit) -> None:
    """Sanity at 14B width with 2 layers: the same weights in fp32 and bf16, one call each."""
    import dataclasses

    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = dataclasses.replace(DiTConfig.wan_s2v_14b(), num_layers=2, audio_inject_layers=(0,))
    m32 = build(cfg, torch.float32, torch)
    m16 = build(cfg, torch.bfloat16, torch)
    m16.load_state_dict({k: v.to(torch.bfloat16) for k, v in m32.state_dict().items()})
    outs = []
    for m in (m32, m16):
        outs.append(run_one(m, torch, 4 * FRAMES * (H // 2) * (W // 2), num_steps=1)[0].float())
        del m
    emit({"check": "fp32 vs bf16 (2 layers, 14B width)", "rel_err": rel(outs[1], outs[0])})
    del m32, m16
    torch.cuda.empty_cache()


def make_inputs(model, torch, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    c = model.config
    dt = model.dtype

    def rand(*shape):  # bf16-representable values whatever the model dtype (fp32 vs bf16 check)
        return torch.randn(*shape, device="cuda", generator=g).to(torch.bfloat16).to(dt)

    return dict(
        text_raw=rand(120, c.text_dim),
        ref=rand(1, 16, 1, H, W),
        motion=rand(1, 16, 19, H, W),
        x=rand(1, 16, FRAMES, H, W),
        audio=rand(1, 25, c.audio_dim, 4 * FRAMES),
    )


def fill_ring(cache, torch, seed) -> None:
    g = torch.Generator(device="cuda").manual_seed(seed)
    for buf in (cache.k, cache.v):
        for i in range(buf.shape[0]):
            buf[i].normal_(generator=g)


def run_one(model, torch, ring, num_steps=4):
    """A fresh set-up for a small model: returns one full-window denoise_block output."""
    from liveavatar.engines.diffusion.runtime.caches import new_caches

    inp = make_inputs(model, torch)
    sink, caches = new_caches(model, num_steps, ring_tokens=ring, sink_tokens=2800)
    text = model.encode_text(inp["text_raw"])
    model.prefill_sink(sink, inp["ref"], inp["motion"], text)
    fill_ring(caches[0], torch, 7)
    return [
        model.denoise_block(
            caches[0], inp["x"], STEP_T[1], text, inp["audio"], None, current_start=ring, sink_rope_offset=5
        )
    ]


def bench_dit(args, torch, emit) -> None:
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8
    from liveavatar.engines.diffusion.runtime.caches import new_caches

    torch._dynamo.config.cache_size_limit = 64
    if args.sanity:
        fp32_vs_bf16(torch, emit)
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = DiTConfig.wan_s2v_14b()
    t0 = time.perf_counter()
    model = build(cfg, torch.bfloat16, torch)
    p_tok = (H // 2) * (W // 2)
    block = FRAMES * p_tok
    ring = 4 * block
    sink, caches = new_caches(model, 4, ring_tokens=ring, sink_tokens=2800)
    inp = make_inputs(model, torch)
    text = model.encode_text(inp["text_raw"])
    model.prefill_sink(sink, inp["ref"], inp["motion"], text)
    for s, cache in enumerate(caches):
        fill_ring(cache, torch, 100 + s)
    torch.cuda.synchronize()
    print(
        f"model + caches + sink ready in {time.perf_counter() - t0:.1f} s; "
        f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB allocated; sink {sink.length} tokens",
        flush=True,
    )

    def check_call():
        fill_ring(caches[0], torch, 100)
        return model.denoise_block(
            caches[0], inp["x"], STEP_T[1], text, inp["audio"], None, current_start=ring, sink_rope_offset=5
        )

    reference = None
    quantized = False
    for name in args.variants:
        fp8, compile_, split = VARIANTS[name]
        try:
            if fp8 and not quantized:
                t = time.perf_counter()
                quantize_linears_fp8(model)
                text = model.encode_text(inp["text_raw"])
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                quantized = True
                print(
                    f"fp8 quantisation {time.perf_counter() - t:.1f} s; "
                    f"{torch.cuda.memory_allocated() / 2**30:.1f} GiB allocated",
                    flush=True,
                )
            if quantized and not fp8:
                raise RuntimeError("bf16 variants must come before fp8 ones")
            model.accelerate(compile=compile_, split_sink=split, mode=args.mode)
            torch.cuda.reset_peak_memory_stats()
            rng = random.Random(0)
            times = []
            for b in range(args.blocks + 1):
                x = inp["x"].clone()
                torch.cuda.synchronize()
                t = time.perf_counter()
                for s, cache in enumerate(caches):
                    v = model.denoise_block(
                        cache, x, STEP_T[s], text, inp["audio"], None, current_start=(4 + b) * block, rng=rng
                    )
                    x = x + (-0.25) * v
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
                print(f"  {name} block {b}: {times[-1]:.3f} s", flush=True)
            steady = sorted(times[1:])
            med = steady[len(steady) // 2]
            out = check_call()
            row = {
                "variant": name,
                "s_per_block": med,
                "min_s": steady[0],
                "fps": 12 / med,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                "first_block_s": times[0],
                "finite": bool(torch.isfinite(out).all()),
            }
            if reference is None and name == "bf16-eager":
                reference = out.float().clone()
            if reference is not None:
                row["rel_err_vs_bf16_eager"] = rel(out, reference)
            emit(row)
        except Exception:  # keep going: one broken variant must not hide the others
            traceback.print_exc()
            emit({"variant": name, "error": traceback.format_exc(limit=2)[-400:]})
            torch.cuda.empty_cache()


def bench_vae(args, torch, emit) -> None:
    from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, VAEConfig, build_vae

    vae = build_vae(VAEConfig(dim=96), "cuda", torch.bfloat16)
    g = torch.Generator(device="cuda").manual_seed(0)
    prime = torch.randn(1, 16, 7, H, W, device="cuda", generator=g)
    blocks = [torch.randn(1, 16, 3, H, W, device="cuda", generator=g) for _ in range(args.blocks + 2)]
    reference = None
    for name in args.variants:
        try:
            torch.cuda.reset_peak_memory_stats()
            dec = StreamingDecoder(vae, compile=(name == "compile"))
            t = time.perf_counter()
            dec.decode_next(prime)
            dec.decode_next(blocks[0])
            dec.decode_next(blocks[1])
            torch.cuda.synchronize()
            first = time.perf_counter() - t
            times, frames = [], []
            for blk in blocks[2:]:
                torch.cuda.synchronize()
                t = time.perf_counter()
                out = dec.decode_next(blk)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
                frames.append(out.float())
            assert out.shape[2] == 12, out.shape
            med = sorted(times)[len(times) // 2]
            got = torch.cat(frames, dim=2)
            row = {
                "variant": f"vae-{name}",
                "s_per_block": med,
                "min_s": min(times),
                "fps": 12 / med,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                "first_block_s": first,
            }
            if reference is None:
                reference = got
            else:
                row["rel_err_vs_eager"] = rel(got, reference)
            emit(row)
        except Exception:
            traceback.print_exc()
            emit({"variant": f"vae-{name}", "error": traceback.format_exc(limit=2)[-400:]})


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["dit", "vae"])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--blocks", type=int, default=3, help="timed blocks after the first (warm-up) block")
    ap.add_argument("--mode", default=None, help="torch.compile mode (default: inductor's default)")
    ap.add_argument("--no-sanity", dest="sanity", action="store_false")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}", flush=True)
    (bench_dit if args.what == "dit" else bench_vae)(args, torch, emit)
    print(f"\n{'variant':18s} {'s/block':>8s} {'fps':>6s} {'peak GiB':>9s} {'first s':>8s} {'rel err':>9s}")
    for r in rows:
        if "variant" in r and "error" not in r:
            err = r.get("rel_err_vs_bf16_eager", r.get("rel_err_vs_eager", float("nan")))
            print(
                f"{r['variant']:18s} {r['s_per_block']:8.3f} {r['fps']:6.1f} {r['peak_gib']:9.1f} "
                f"{r['first_block_s']:8.1f} {err:9.2e}"
            )
        elif "error" in r:
            print(f"{r['variant']:18s} ERROR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
