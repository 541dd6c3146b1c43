"""Upstream's own model code on the same device, in the same run as ours (issue 27), one JSON line per
figure. Reads only a checkout of Alibaba-Quark/LiveAvatar and what `gpu_check.py dit --save DIR` wrote
(our config as upstream's constructor arguments, the call's inputs and our output; both sides make
the same random weights from the parameter names); never imports our package (both are called
`liveavatar`: run with our src/ off the path).

  parity   upstream's CausalWanModel_S2V in bf16 with our weights (benchmarks/keyed_init.py): the sink prefill and one
           `_forward_inference` call with the same inputs (eager) -> rel L2 against our output.
  speed    upstream fp8 (its replace_linear_with_scaled_fp8, its exclusions) + torch.compile (its
           ENABLE_COMPILE default), four step caches sharing one condition cache, one call per step
           and block as its single-GPU generate: s/block median (blocks after the first two), first
           block s (compile), peak GiB.

Substitutions (the device has no flash-attn): upstream's `flash_attention` (text and audio
cross-attention) becomes torch SDPA with the same key-length mask; on the CPU (--cpu-smoke) its
cuDNN self-attention becomes SDPA too.

    PYTHONPATH= python3 benchmarks/gpu_upstream.py UPSTREAM_DIR --ours DIR [--clips 2] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time
import types
from pathlib import Path

GIB = 2**30
PACKAGES = (
    "liveavatar",
    "liveavatar.models",
    "liveavatar.models.wan",
    "liveavatar.models.wan.wan_2_2",
    "liveavatar.models.wan.wan_2_2.modules",
    "liveavatar.models.wan.wan_2_2.modules.s2v",
    "liveavatar.models.wan.wan_2_2.distributed",
    "liveavatar.utils",
)
FP8_IGNORE = [
    "text_embedding",
    "time_embedding",
    "time_projection",
    "head.head",
    "casual_audio_encoder.encoder.final_linear",
]  # upstream's own exclusions (its inference scripts)


def emit(figure: str, **values) -> None:
    print(
        json.dumps({"figure": figure, **{k: round(v, 5) if isinstance(v, float) else v for k, v in values.items()}}),
        flush=True,
    )


def import_upstream(root: Path, compile: bool, cpu: bool):
    """Upstream's model module, its packages' __init__ files skipped (they import the whole
    pipeline: decord, peft, the VAE, ...), flash-attn replaced by SDPA."""
    os.environ["ENABLE_COMPILE"] = "true" if compile else "false"  # read once, at import
    sys.path.insert(0, str(root))
    for name in PACKAGES:
        module = types.ModuleType(name)
        module.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = module
    import importlib

    import torch

    with contextlib.redirect_stdout(sys.stderr):  # its modules print at import: stdout stays JSON lines
        model_mod = importlib.import_module("liveavatar.models.wan.causal_model_s2v")
        fp8_mod = importlib.import_module("liveavatar.utils.fp8_linear")

    def sdpa_attention(
        q,
        k,
        v,
        q_lens=None,
        k_lens=None,
        dropout_p=0.0,
        softmax_scale=None,
        q_scale=None,
        causal=False,
        window_size=(-1, -1),
        deterministic=False,
        dtype=torch.bfloat16,
        version=None,
        fa_version=None,
    ):
        mask = None
        if k_lens is not None:  # keys beyond each sample's length are padding
            mask = (torch.arange(k.shape[1], device=k.device)[None, :] < k_lens[:, None])[:, None, None, :]
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2).to(dtype),
            k.transpose(1, 2).to(dtype),
            v.transpose(1, 2).to(dtype),
            attn_mask=mask,
            is_causal=causal,
            scale=softmax_scale,
        )
        return out.transpose(1, 2).contiguous().to(q.dtype)

    for name, module in list(sys.modules.items()):
        if name.startswith("liveavatar.models") and module is not None:
            if hasattr(module, "flash_attention"):
                module.flash_attention = sdpa_attention
            if cpu and hasattr(module, "attention") and callable(module.attention):
                module.attention = sdpa_attention
    return model_mod, fp8_mod


def build(model_mod, kwargs: dict, device, weights: dict | None, torch):
    """Upstream's model on `device` with `weights`, or keyed random weights (ours' values) when None."""
    original_to = torch.Tensor.to
    if device.type == "cpu":  # its constructor moves the RoPE table with .to("cuda")
        torch.Tensor.to = lambda self, *a, **k: original_to(self, *["cpu" if x == "cuda" else x for x in a], **k)
    try:
        with torch.device(device):  # not meta: the RoPE tables are plain tensors made in the constructor
            model = model_mod.CausalWanModel_S2V(**kwargs)
    finally:
        torch.Tensor.to = original_to
    model = model.to(torch.bfloat16 if device.type == "cuda" else torch.float32)
    if weights is not None:
        missing, unexpected = model.load_state_dict(weights, strict=False)
        emit(
            "upstream weights",
            missing=len(missing),
            unexpected=len(unexpected),
            missing_keys=sorted(missing)[:8],
            unexpected_keys=sorted(unexpected)[:8],
        )
    else:  # the same values as ours, made from each parameter's name (benchmarks/keyed_init.py)
        sys.path.insert(0, str(Path(__file__).parent))
        from keyed_init import keyed_init

        keyed_init(model, torch)
    return model.eval().requires_grad_(False)


def new_caches(model, steps: int, ring: int, device, dtype, torch) -> tuple[list, list]:
    """Upstream's per-step caches around one shared condition cache, and its cross-attention cache."""
    heads, dim = model.num_heads, model.dim // model.num_heads
    shared = [
        {
            "cond_k": torch.zeros([1, 2800, heads, dim], dtype=dtype, device=device),
            "cond_v": torch.zeros([1, 2800, heads, dim], dtype=dtype, device=device),
            "cond_end": torch.tensor([0], dtype=torch.long, device=device),
        }
        for _ in range(model.num_layers)
    ]
    caches = [
        [
            {
                "k": torch.zeros([1, ring, heads, dim], dtype=dtype, device=device),
                "v": torch.zeros([1, ring, heads, dim], dtype=dtype, device=device),
                **shared[i],
            }
            for i in range(model.num_layers)
        ]
        for _ in range(steps)
    ]
    cross = [
        {
            "k": torch.zeros([1, 0, heads, dim], dtype=dtype, device=device),
            "v": torch.zeros([1, 0, heads, dim], dtype=dtype, device=device),
            "is_init": False,
        }
        for _ in range(model.num_layers)
    ]
    return caches, cross


def call_args(io: dict, torch) -> dict:
    x = io["x"]
    return {
        "context": [io["text"]],
        "seq_len": None,
        "cond_states": torch.zeros_like(x),
        "motion_latents": io["motion"],
        "ref_latents": io["ref"],
        "audio_input": io["audio"],
        "motion_frames": [73, 19],
        "drop_motion_frames": False,
    }


def parity(model_mod, ours: Path, device, torch) -> None:
    from safetensors.torch import load_file

    kwargs = json.loads((ours / "upstream_kwargs.json").read_text())
    io = load_file(str(ours / "io.safetensors"), device=str(device))
    model = build(model_mod, kwargs, device, None, torch)
    ours_names = set(json.loads((ours / "shapes.json").read_text())["params"])
    names = {n for n, _ in model.named_parameters()}
    emit(
        "parameter names",
        ours=len(ours_names),
        upstream=len(names),
        only_ours=sorted(ours_names - names)[:8],
        only_upstream=sorted(names - ours_names)[:8],
    )
    dtype = next(model.parameters()).dtype
    io = {k: v.to(dtype) for k, v in io.items()}
    x = io["x"]
    frames, p = x.shape[2], (x.shape[3] // 2) * (x.shape[4] // 2)
    caches, cross = new_caches(model, 1, 4 * frames * p, device, dtype, torch)
    args = call_args(io, torch)
    eager = type(model)._forward_inference
    eager = getattr(eager, "_torchdynamo_orig_callable", getattr(eager, "__wrapped__", eager))
    with torch.no_grad():
        model(
            [x[0]],
            t=torch.zeros([1, frames], device=device),
            **args,
            sink_flag=True,
            kv_cache=caches[0],
            crossattn_cache=cross,
            current_start=0,
            current_end=frames * p,
        )
        random.seed(0)  # c = 0: the sink's RoPE offset is 0 whatever is drawn
        out = eager(
            model,
            [x[0]],
            t=torch.full([1, frames], 1000.0, device=device),
            **args,
            kv_cache=caches[0],
            crossattn_cache=cross,
            current_start=0,
            current_end=frames * p,
        )
    out = torch.cat(list(out), dim=0).reshape(io["out"].shape).float()
    ref = io["out"].float()
    emit(
        "dit call ours vs upstream",
        dtype=str(dtype),
        rel_l2=((out - ref).norm() / ref.norm()).item(),
        finite=bool(torch.isfinite(out).all()),
    )


def speed(model_mod, fp8_mod, ours: Path, device, blocks: int, torch) -> None:
    kwargs = json.loads((ours / "upstream_kwargs.json").read_text())
    io = json.loads((ours / "shapes.json").read_text())
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build(model_mod, kwargs, device, None, torch)
    if cuda:
        fp8_mod.replace_linear_with_scaled_fp8(model, ignore_keys=FP8_IGNORE)
    dtype = torch.bfloat16 if cuda else torch.float32
    h, w, frames, blocks_per_clip = io["h"], io["w"], 3, 4
    p = (h // 2) * (w // 2)
    gen = torch.Generator(device=device).manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=dtype)

    data = {
        "text": randn(io["text_tokens"], kwargs["text_dim"]),
        "ref": randn(1, 16, 1, h, w),
        "motion": randn(1, 16, 19, h, w),
        "x": randn(1, 16, frames, h, w),
        "audio": randn(1, 25, kwargs["audio_dim"], 4 * frames),
    }
    caches, cross = new_caches(model, 4, blocks_per_clip * frames * p, device, dtype, torch)
    args = call_args(data, torch)
    random.seed(420)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, t0 = [], time.perf_counter()
    with torch.no_grad():
        for cache in caches:  # the sink prefill per step cache, as its generate does at clip 0
            model(
                [data["x"][0]],
                t=torch.zeros([1, frames], device=device),
                **args,
                sink_flag=True,
                kv_cache=cache,
                crossattn_cache=cross,
                current_start=0,
                current_end=frames * p,
            )
        for block in range(blocks):
            x = data["x"][0]
            start = block * frames * p
            for step, t in enumerate((1000.0, 937.5, 833.3, 625.0)):  # timing only: any four levels
                v = model(
                    [x],
                    t=torch.full([1, frames], t, device=device),
                    **args,
                    kv_cache=caches[step],
                    crossattn_cache=cross,
                    current_start=start,
                    current_end=start + frames * p,
                )
                x = x - 0.25 * torch.cat(list(v), dim=0).reshape(x.shape)
            if cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            times.append(now - t0)
            t0 = now
    steady = statistics.median(times[2:]) if len(times) > 3 else times[-1]
    emit(
        "upstream dit fp8+compile" if cuda else "upstream dit (cpu smoke)",
        blocks=len(times),
        s_per_block=steady,
        fps=12 / steady,
        best_block_s=min(times),
        first_block_s=times[0],
        max_allocated_gib=torch.cuda.max_memory_allocated() / GIB if cuda else None,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("upstream", type=Path, help="a checkout of Alibaba-Quark/LiveAvatar")
    ap.add_argument("--ours", type=Path, required=True, help="what `gpu_check.py dit --save DIR` wrote")
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--parts", default="parity,speed")
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args()
    if not (args.upstream / "liveavatar" / "models" / "wan" / "causal_model_s2v.py").is_file():
        sys.exit(f"error: {args.upstream} is not a LiveAvatar checkout (no liveavatar/models/wan/causal_model_s2v.py)")
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    for part in args.parts.split(","):
        compile = part == "speed" and device.type == "cuda"
        for name in [n for n in sys.modules if n == "liveavatar" or n.startswith("liveavatar.")]:
            del sys.modules[name]  # a fresh import: ENABLE_COMPILE is read at import
        model_mod, fp8_mod = import_upstream(args.upstream, compile, device.type == "cpu")
        t0 = time.perf_counter()
        if part == "parity":
            parity(model_mod, args.ours, device, torch)
        else:
            speed(model_mod, fp8_mod, args.ours, device, 2 if args.cpu_smoke else 4 * args.clips, torch)
        emit("part done", part=f"upstream {part}", s=time.perf_counter() - t0)
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
