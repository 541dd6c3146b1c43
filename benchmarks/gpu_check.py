"""The device check of issue 27, one part per call, one JSON line per figure on stdout:

kernel   the stored-form attention kernel (model/fp8_attention.py) against bf16 SDPA on the real
         shapes (3168 queries, 40 heads x 128, ring windows of 1-4 blocks + the 2640-token sink):
         median ms, TFLOP/s, rel L2 against fp32 SDPA over the same stored values; today's path
         (de-quantise + [ring; sink] concatenation + SDPA) beside it; a few tile shapes.
modes    every memory mode of the issue's table (14B random weights, fp8 linears, 704*384, 4 steps,
         the real block loop + streaming decode + uint8 frames to the host, bench_memory_gpu's
         run_mode), each with and without the kernel: s/block, fps, peak GiB, first block s.
dit      one bf16 DiT call of ours on CUDA (keyed random weights, benchmarks/keyed_init.py): time;
         the inputs and the output saved for the upstream comparison (benchmarks/gpu_upstream.py).

  PYTHONPATH=src python3 benchmarks/gpu_check.py kernel modes
  PYTHONPATH=src python3 benchmarks/gpu_check.py kernel modes --cpu-smoke   # tiny shapes, any machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

if "--cpu-smoke" in sys.argv:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # the kernel runs through Triton's interpreter
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as the engine
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
GIB = 2**30


def emit(figure: str, **values) -> None:
    print(
        json.dumps({"figure": figure, **{k: round(v, 5) if isinstance(v, float) else v for k, v in values.items()}}),
        flush=True,
    )


def timed(fn, cuda: bool, reps: int) -> float:
    """Median seconds of `fn` (CUDA events on the device; one host clock per call elsewhere)."""
    fn()
    times = []
    for _ in range(reps):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def kernel_check(smoke: bool, device: torch.device) -> None:
    from liveavatar.engines.diffusion.model.attention import sdpa
    from liveavatar.engines.diffusion.model.fp8_attention import StoredKV, stored_attention
    from liveavatar.engines.diffusion.runtime.caches import dequantize_rows, quantize_rows

    cuda = device.type == "cuda"
    n_q, heads, sink_n, block = (48, 2, 40, 48) if smoke else (3168, 40, 2640, 3168)
    tiles = [(32, 32, 4, 1)] if smoke else [(128, 64, 8, 2), (128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3)]
    reps = 1 if smoke else 20
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(n):
        return torch.randn(1, n, heads, 128, generator=gen, device=device).to(torch.bfloat16)

    for blocks in (1, 2, 4) if not smoke else (2,):
        n_ring = blocks * block
        q, rk, rv, sk, sv = randn(n_q), randn(n_ring), randn(n_ring), randn(sink_n), randn(sink_n)
        (rk8, rks), (rv8, rvs), (sv8, svs) = quantize_rows(rk), quantize_rows(rv), quantize_rows(sv)
        ring, sink = StoredKV(rk8, rks, rv8, rvs), StoredKV(sk, None, sv8, svs)
        keys = torch.cat([dequantize_rows(rk8, rks, torch.bfloat16), sk], 1)
        values = torch.cat([dequantize_rows(rv8, rvs, torch.bfloat16), dequantize_rows(sv8, svs, torch.bfloat16)], 1)
        want = sdpa(q.float(), keys.float(), values.float())
        flops = 4 * n_q * keys.shape[1] * heads * 128
        shape = f"{n_q}q x {n_ring}+{sink_n}k x {heads}h x 128"
        t = timed(lambda: sdpa(q, keys, values), cuda, reps)
        emit(
            "attention",
            path="sdpa bf16 on de-quantised [ring; sink]",
            shape=shape,
            ms=t * 1e3,
            tflops=flops / t / 1e12,
            rel_err=rel(sdpa(q, keys, values), want),
        )

        def today():
            k = torch.cat([dequantize_rows(rk8, rks, torch.bfloat16), sk], 1)
            v = torch.cat([dequantize_rows(rv8, rvs, torch.bfloat16), dequantize_rows(sv8, svs, torch.bfloat16)], 1)
            return sdpa(q, k, v)

        t = timed(today, cuda, reps)
        emit(
            "attention",
            path="today: de-quantise + concatenate + sdpa",
            shape=shape,
            ms=t * 1e3,
            tflops=flops / t / 1e12,
        )
        for fp8_qk in (False, True):
            for bm, bn, warps, stages in tiles:

                def run():
                    return stored_attention(
                        q, ring, sink, fp8_qk=fp8_qk, block_m=bm, block_n=bn, num_warps=warps, num_stages=stages
                    )

                try:
                    t = timed(run, cuda, reps)
                except Exception as exc:  # a tile shape the compiler refuses (shared memory): say so, go on
                    emit(
                        "attention",
                        path="stored kernel",
                        fp8_qk=fp8_qk,
                        tile=[bm, bn, warps, stages],
                        error=repr(exc)[:200],
                    )
                    continue
                emit(
                    "attention",
                    path="stored kernel",
                    fp8_qk=fp8_qk,
                    tile=[bm, bn, warps, stages],
                    shape=shape,
                    ms=t * 1e3,
                    tflops=flops / t / 1e12,
                    rel_err=rel(run(), want),
                )


def build_dit(smoke: bool, device: torch.device, fp8: bool, compile: bool, config=None, init=None):
    from bench_dit_gpu import init_random
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.model.fp8 import quantize_linears_fp8

    config = config or (DiTConfig.tiny() if smoke else DiTConfig.wan_s2v_14b())
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    dit = CausalS2VDiT(config, dtype=dtype, device="meta")
    dit.to_empty(device=device)
    (init or init_random)(dit, torch)
    dit._rope = None
    if fp8:
        quantize_linears_fp8(dit)
    dit.accelerate(compile=compile)
    return dit


def modes_check(smoke: bool, device: torch.device, clips: int) -> None:
    from bench_memory_gpu import run_mode
    from liveavatar.engines.diffusion.vae.vae import VAEConfig, build_vae
    from liveavatar.planning.memory import MODES, Workload

    cuda = device.type == "cuda"
    dit = build_dit(smoke, device, fp8=True, compile=cuda)
    height, width = (64, 64) if smoke else (384, 704)
    vae_config = VAEConfig(dim=4) if smoke else VAEConfig.wan21()
    vae = build_vae(vae_config, device=device, dtype=dit.dtype)
    work = Workload(
        dit.config,
        height,
        width,
        48,
        4,
        num_frames=clips * 48,
        lora=False,
        value_bytes=torch.finfo(dit.dtype).bits // 8,
        vae_dim=vae_config.dim,
    )
    by_name = {m.name: m for m in MODES}
    # the table: (mode, allocator cap GiB or None); the capped rows last (a cap only tightens)
    table = [
        ("fp8 weights", None),
        ("fp8 KV", None),
        ("KV streamed from pinned host memory", None),
        ("text encoder on the CPU", 24.0),
        ("smaller decode passes", 22.0),
    ]
    if smoke:  # the code path of every row is the same; the interpreter is slow
        table = table[1:2]
    total = torch.cuda.get_device_properties(device).total_memory if cuda else 0
    for name, cap in table:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap * GIB / total) if cap else 1.0, device)
        # today's path, then the new one (kernel + decode overlap); each change alone on one row
        variants = [(False, False), (True, True)] + ([(True, False), (False, True)] if name == "fp8 KV" else [])
        for kernel, overlap in variants:
            # the compiled halves of a layer do not contain the attention: switching it compiles nothing
            dit._stored_attention = kernel
            out = run_mode(dit, vae, by_name[name], work, clips, device, overlap=overlap)
            emit("mode", kernel=kernel, overlap=overlap, cap_gib=cap, **out)
            if cuda:
                torch.cuda.empty_cache()
    dit._stored_attention = None


def upstream_kwargs(c) -> dict:
    """Our DiT config as upstream's CausalWanModel_S2V constructor arguments (benchmarks/gpu_upstream.py)."""
    fixed = {
        "cross_attn_type": "t2v_cross_attn",
        "zero_init": True,
        "zero_timestep": True,
        "enable_motioner": False,
        "enable_tsm": False,
        "trainable_token_pos_emb": False,
        "motion_token_num": 1024,
        "model_type": "s2v",
        "window_size": [-1, -1],
        "slide_motion_frames": False,
        "local_attn_size": -1,
    }
    names = (
        "cond_dim",
        "audio_dim",
        "num_audio_token",
        "enable_adain",
        "adain_mode",
        "audio_inject_layers",
        "add_last_motion",
        "enable_framepack",
        "framepack_drop_mode",
        "patch_size",
        "text_len",
        "in_dim",
        "dim",
        "ffn_dim",
        "freq_dim",
        "text_dim",
        "out_dim",
        "num_heads",
        "num_layers",
        "qk_norm",
        "cross_attn_norm",
        "eps",
    )
    return {**fixed, **{n: list(v) if isinstance(v, tuple) else v for n in names for v in [getattr(c, n)]}}


def dit_check(smoke: bool, device: torch.device, save: Path | None) -> None:
    """One bf16 DiT call at the real shapes (sink prefilled, ring empty), weights from keyed_init (upstream
    makes the same ones), the inputs and the output kept for benchmarks/gpu_upstream.py."""
    import dataclasses

    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    cuda = device.type == "cuda"
    # smoke: one layer at the real width (upstream's sink code assumes dim 5120)
    small = (
        dataclasses.replace(
            DiTConfig.tiny(), dim=5120, num_heads=40, num_layers=1, ffn_dim=512, audio_inject_layers=(0,)
        )
        if smoke
        else None
    )
    from keyed_init import keyed_init

    dit = build_dit(smoke, device, fp8=False, compile=False, config=small, init=keyed_init)
    c = dit.config
    h, w = (8, 8) if smoke else (48, 88)
    gen = torch.Generator(device=device).manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=dit.dtype)

    inputs = {
        "text": randn(120 if not smoke else 5, c.text_dim),
        "ref": randn(1, 16, 1, h, w),
        "motion": randn(1, 16, 19, h, w),
        "x": randn(1, 16, 3, h, w),
        "audio": randn(1, 25, c.audio_dim, 12),
    }
    text = dit.encode_text(inputs["text"])
    p = (h // 2) * (w // 2)
    sink, caches = dit.new_caches(num_steps=1, ring_tokens=4 * 3 * p, sink_tokens=int(2.5 * p))
    dit.prefill_sink(sink, inputs["ref"], inputs["motion"], text)

    def call():
        return dit.denoise_block(caches[0], inputs["x"], 1000.0, text, inputs["audio"], None, 0, sink_rope_offset=0)

    t = timed(call, cuda, 1 if smoke else 5)
    out = call()
    emit("dit call bf16", ms=t * 1e3, shape=list(out.shape), finite=bool(torch.isfinite(out).all()))
    if save is not None:
        from safetensors.torch import save_file

        save.mkdir(parents=True, exist_ok=True)
        (save / "upstream_kwargs.json").write_text(json.dumps(upstream_kwargs(c)))
        (save / "shapes.json").write_text(
            json.dumps(
                {
                    "h": 48 if not smoke else h,
                    "w": 88 if not smoke else w,
                    "text_tokens": inputs["text"].shape[0],
                    "params": sorted(n for n, _ in dit.named_parameters()),
                }
            )
        )
        save_file({**{k: v.cpu() for k, v in inputs.items()}, "out": out.cpu()}, str(save / "io.safetensors"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts", nargs="+", choices=("kernel", "modes", "dit"))
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on any machine (Triton interpreter)")
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--save", type=Path, default=None, help="dit: where to keep the weights and the output")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    emit("device", name=torch.cuda.get_device_name() if device.type == "cuda" else "CPU", torch=torch.__version__)
    for part in args.parts:
        t0 = time.perf_counter()
        if part == "kernel":
            kernel_check(args.cpu_smoke, device)
        elif part == "modes":
            modes_check(args.cpu_smoke, device, args.clips)
        else:
            dit_check(args.cpu_smoke, device, args.save)
        emit("part done", part=part, s=time.perf_counter() - t0)


if __name__ == "__main__":
    main()
