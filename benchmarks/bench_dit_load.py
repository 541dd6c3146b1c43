"""DiT checkpoint loading: peak RSS while loading vs the weights' size, and the 14B meta build time.

Writes a random mid-size checkpoint in the real Wan2.2-S2V layout (config.json, index.json, bf16
shards) to a temp dir, then loads it in a fresh subprocess and reports
(peak RSS (ru_maxrss) during loading - current RSS after importing torch and building the
model on meta) / weight bytes.

    .venv/bin/python benchmarks/bench_dit_load.py [--dim 1536 --layers 20 --shard-mb 400]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import resource, sys, time, json
import torch
from liveavatar.engines.diffusion.loading.checkpoint import load_dit_checkpoint, read_config
from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
folder, dtype = sys.argv[1], getattr(torch, sys.argv[2])
model = CausalS2VDiT(read_config(folder), dtype=dtype, device="meta")
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
base = rss_kb()
t = time.perf_counter()
report = load_dit_checkpoint(model, folder, device="cpu", dtype=dtype)
# touch every weight: a bf16 -> bf16 load is zero-copy (mmap-backed, paged in lazily)
checksum = sum(float(p.sum()) for p in model.parameters())
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_kb": peak, "bytes": report.num_bytes, "tensors": report.num_tensors,
                  "seconds": dt}))
"""


def write_checkpoint(folder: Path, config: dict, shard_bytes: int) -> int:
    import torch
    from safetensors.torch import save_file

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    model = CausalS2VDiT(DiTConfig.from_json(config), dtype=torch.bfloat16, device="meta")
    items = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    shards: list[list[tuple[str, tuple]]] = [[]]
    size = 0
    for key, shape in items:
        n = 2 * int(torch.Size(shape).numel())
        if size + n > shard_bytes and shards[-1]:
            shards.append([])
            size = 0
        shards[-1].append((key, shape))
        size += n
    gen = torch.Generator().manual_seed(0)
    weight_map = {}
    total = 0
    for i, shard in enumerate(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {k: (torch.randn(s, generator=gen) * 0.02).to(torch.bfloat16) for k, s in shard}
        total += sum(t.numel() * 2 for t in tensors.values())
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k, _ in shard})
        del tensors
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(json.dumps({"_class_name": "CausalWanModel_S2V", **config}))
    return total


def meta_build_seconds() -> float:
    import torch

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    t = time.perf_counter()
    CausalS2VDiT(DiTConfig.wan_s2v_14b(), dtype=torch.bfloat16, device="meta")
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--shard-mb", type=int, default=400)
    args = parser.parse_args()
    heads = args.dim // 128
    config = {
        "dim": args.dim,
        "ffn_dim": args.dim * 8 // 3,
        "num_heads": heads,
        "num_layers": args.layers,
        "text_dim": 1024,
        "audio_dim": 512,
        "audio_inject_layers": list(range(0, args.layers, 4)),
        "model_type": "s2v",
    }
    print(
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
    )
    print(f"14B DiT built on meta: {meta_build_seconds():.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        total = write_checkpoint(folder, config, args.shard_mb << 20)
        shards = len(list(folder.glob("*.safetensors")))
        print(f"wrote {total / 2**30:.2f} GiB bf16 in {shards} shards ({time.perf_counter() - t:.1f} s)")
        for dtype in ("bfloat16", "float32"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder), dtype], capture_output=True, text=True, check=True
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            grew = (res["peak_kb"] - res["base_kb"]) * 1024
            print(
                f"[bf16 file -> {dtype} on cpu] {res['tensors']} tensors, {res['bytes'] / 2**30:.2f} GiB loaded and "
                f"touched in {res['seconds']:.2f} s; RSS baseline {res['base_kb'] / 2**20:.2f} GiB, peak "
                f"{res['peak_kb'] / 2**20:.2f} GiB; peak growth / loaded weights = {grew / res['bytes']:.3f} "
                "(target <= 1.2)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
