"""Random weights that depend only on each parameter's name and shape, so that our DiT and upstream's
(the same state-dict keys) get the same values in separate processes without a 28 GB file between
them (benchmarks/gpu_check.py dit, benchmarks/gpu_upstream.py parity). Same scales as
bench_dit_gpu.init_random: norms 1, matrices N(0, 0.02), vectors N(0, 0.01)."""

from __future__ import annotations

import zlib


def keyed_init(model, torch) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
                continue
            gen = torch.Generator(device=p.device).manual_seed(zlib.crc32(name.encode()))
            std = 0.02 if p.dim() > 1 else 0.01
            p.copy_(torch.randn(p.shape, generator=gen, device=p.device, dtype=torch.float32) * std)
