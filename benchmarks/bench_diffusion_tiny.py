"""The diffusion engine end to end on a tiny random release, on the CPU: seconds and RSS per clip
as the clip count grows (both should stay flat: nothing accumulates across clips).

    .venv/bin/python benchmarks/bench_diffusion_tiny.py --clips 20 --size 256*256
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    """Resident memory after malloc_trim (freed heap handed back, so allocator slack is not counted)."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--size", default="256*256")
    parser.add_argument("--infer_frames", type=int, default=48)
    args = parser.parse_args()

    import torch

    from liveavatar.config import GenerateConfig
    from liveavatar.engines.base import Inputs
    from liveavatar.engines.diffusion.engine import DiffusionEngine
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.planning import make_plan
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    ckpt, lora = write_tiny_checkpoint(Path(tempfile.mkdtemp()))
    seconds = args.clips * args.infer_frames / 25
    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    image = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    inputs = Inputs("a person talking", image, audio, 16000, Path("x"), Path("y"))
    config = GenerateConfig(
        image=Path("x"),
        audio=Path("y"),
        prompt=inputs.prompt,
        size=args.size,
        ckpt_dir=ckpt,
        lora_path_dmd=lora,
        infer_frames=args.infer_frames,
        num_clip=args.clips,
        enable_online_decode=False,
    ).resolve()
    t0 = time.perf_counter()
    engine = DiffusionEngine.from_config(config, resolve_layout(ckpt, lora))
    plan = make_plan(config, inputs, "diffusion")
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
        f"plan {plan.height}x{plan.width}, {plan.num_clips} clips of {plan.frames_per_clip} frames; load {time.perf_counter() - t0:.1f} s"
    )
    print("clip  s/clip  frames/s  RSS MB")
    last = time.perf_counter()
    rows = []
    for clip, frames in enumerate(
        engine.generate(inputs, plan, lambda s: None)
    ):  # one block per clip (per-clip decode)
        now = time.perf_counter()
        rows.append((clip + 1, now - last, len(frames) / (now - last), rss_mb()))
        last = now
        print(f"{rows[-1][0]:4d}  {rows[-1][1]:6.2f}  {rows[-1][2]:8.1f}  {rows[-1][3]:7.1f}", flush=True)
    later = rows[1:]
    print(
        f"clips 2-{len(rows)}: s/clip {min(r[1] for r in later):.2f}-{max(r[1] for r in later):.2f}, "
        f"RSS {min(r[3] for r in later):.0f}-{max(r[3] for r in later):.0f} MB "
        f"(growth {later[-1][3] - later[0][3]:+.1f} MB); peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
