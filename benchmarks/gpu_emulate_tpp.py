"""Five 24 GB cards emulated on one big GPU: ``--num_gpus_dit 4 --enable_vae_parallel`` with each
worker process capped at --cap_gib of the same device, every worker in the mode its plan chose.

The guide's failure case (five 24 GB cards cannot run Live Avatar: FSDP's unshard needs 25.65 GB
per card) against the multi-GPU form here (one denoising step per DiT worker, a decode worker).
One H200 holds five workers at once; each process caps its own allocator
(``torch.cuda.set_per_process_memory_fraction``). NCCL refuses two ranks on one GPU, so the
latents travel over gloo, staged through host memory (the link the CPU tests use). Random 14B
weights at 704*384, 4 steps, 48 frames per clip, rolling sink (the clip-1 motion is the original
one: no VAE re-encode), streaming decode to uint8 frames on the decode worker.

Reported per worker: the plan (mode, predicted peak, loop phase) and the measured
torch.cuda.max_memory_allocated / max_memory_reserved; then whether the frames equal one process
running all four steps in the same mode (bit for bit expected: same kernels, same inputs).
The speed is not the point (five processes share one GPU); the memory is.

    PYTHONPATH=src python benchmarks/gpu_emulate_tpp.py                  # one big GPU (H200: 139 GiB)
    PYTHONPATH=src python benchmarks/gpu_emulate_tpp.py --cpu-smoke      # tiny model, gloo CPU processes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as the engine
GIB = 2**30


@dataclass(frozen=True)
class Setup:
    """Everything a worker process needs (pickled to it)."""

    tiny: bool
    cap_gib: float
    clips: int
    num_dit: int
    out: str
    port: int = 0

    @property
    def world(self) -> int:
        return self.num_dit + 1

    @property
    def shape(self) -> tuple[int, int, int]:  # height, width, frames per clip
        return (64, 64, 12) if self.tiny else (384, 704, 48)


def _device(setup: Setup):
    import torch

    return torch.device("cpu") if setup.tiny else torch.device("cuda", 0)


def _dtype(setup: Setup):
    import torch

    return torch.float32 if setup.tiny else torch.bfloat16


def memory_plan(setup: Setup):
    """The planner's RunMemory for the emulated cards (what `generate --dry_run` prints)."""
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.planning.memory import Workload, plan_workers, worker_shares

    h, w, frames = setup.shape
    config = DiTConfig.tiny() if setup.tiny else DiTConfig.wan_s2v_14b()
    vb = 4 if setup.tiny else 2
    work = Workload(config, h, w, frames, 4, num_frames=setup.clips * frames, lora=False, value_bytes=vb,
                    vae_dim=4 if setup.tiny else 96)
    budgets = [None if setup.tiny else int(setup.cap_gib * GIB)] * setup.world
    return plan_workers(work, worker_shares(setup.num_dit, True, 4), budgets, fp8_weights=not setup.tiny)


def random_dit(setup: Setup, fp8: bool):
    """The DiT with random weights, the same in every process (seeded per parameter name), made one
    module at a time on the device so fp8 weights never sit there in bf16 all at once."""
    import torch
    from torch import nn

    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.model.fp8 import FP8Linear, excluded

    device = _device(setup)
    model = CausalS2VDiT(DiTConfig.tiny() if setup.tiny else DiTConfig.wan_s2v_14b(), dtype=_dtype(setup), device="meta")
    with torch.no_grad():
        for name, module in list(model.named_modules()):
            own = list(module.named_parameters(recurse=False))
            if not own:
                continue
            module.to_empty(device=device, recurse=False)
            for pname, p in module.named_parameters(recurse=False):
                full = f"{name}.{pname}"
                gen = torch.Generator(device=device).manual_seed(zlib.crc32(full.encode()))
                if "norm" in full:
                    p.fill_(1.0)
                else:
                    p.normal_(0, 0.02 if p.dim() > 1 else 0.01, generator=gen)
            if fp8 and type(module) is nn.Linear and not excluded(name):
                parent_name, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent_name) if parent_name else model, child, FP8Linear(module))
    model._rope = None
    model.fp8 = fp8
    return model.eval().requires_grad_(False)


def conditions(setup: Setup, dit_config):
    """Random conditions (text embedding, audio features, reference, motion), the same everywhere."""
    import torch

    h, w, frames = setup.shape
    gen = torch.Generator().manual_seed(7)
    out = {"text": torch.randn(min(120, dit_config.text_len), dit_config.text_dim, generator=gen),
           "audio": torch.randn(1, 25, dit_config.audio_dim, setup.clips * frames, generator=gen),
           "ref": torch.randn(1, 16, 1, h // 8, w // 8, generator=gen),
           "motion": torch.randn(1, 16, 19, h // 8, w // 8, generator=gen)}
    return {k: v.to(_dtype(setup)) for k, v in out.items()}  # on the host: the decode worker broadcasts them


def loop_plan(setup: Setup):
    from liveavatar.engines.diffusion.runtime.loop import LoopPlan

    h, w, frames = setup.shape
    return LoopPlan(frames_per_clip=frames, num_clips=setup.clips, latent_hw=(h // 8, w // 8), sample_steps=4,
                    sample_shift=3.0, seed=0)


def decoder(setup: Setup, mode):
    import torch

    from liveavatar.engines.diffusion.vae.tiles import TiledStreamingDecoder
    from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, VAEConfig, build_vae

    torch.manual_seed(3)
    vae = build_vae(VAEConfig(dim=4) if setup.tiny else VAEConfig.wan21(), device=_device(setup), dtype=_dtype(setup))
    per_pass = 0 if setup.tiny else 1
    if mode.decode_tiles > 1:
        return TiledStreamingDecoder(vae, mode.decode_tiles, latents_per_pass=per_pass)
    return StreamingDecoder(vae, latents_per_pass=per_pass)


def _cap(setup: Setup) -> None:
    import torch

    if not setup.tiny:
        torch.cuda.set_device(0)
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, setup.cap_gib * GIB / total), 0)


def _peaks(setup: Setup) -> dict:
    import torch

    if setup.tiny:
        return {}
    return {"max_allocated_gib": torch.cuda.max_memory_allocated(0) / GIB,
            "max_reserved_gib": torch.cuda.max_memory_reserved(0) / GIB}


def _decode_all(dec, blocks, frames_out: list) -> None:
    from liveavatar.engines.diffusion.encoders.conditioning import frames_to_uint8

    for block in blocks:
        frames_out.append(frames_to_uint8(dec.decode_next(block.latents)))


def worker(rank: int, setup: Setup) -> None:
    """One rank: DiT ranks run their step through the engine's own code (serve_dit); the last rank
    sends the job, receives the clean latents and decodes them."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from liveavatar.engines.diffusion.runtime.ranks import Roles, _init_group, serve_dit

    _cap(setup)
    roles = Roles(setup.num_dit, True)
    memory = memory_plan(setup)
    plan_of = memory.for_rank(rank)
    store = dist.TCPStore("127.0.0.1", setup.port, setup.world, False, timeout=timedelta(seconds=600))
    t0 = time.perf_counter()
    report = {"rank": rank, "label": plan_of.share.label, "mode": plan_of.choice.mode.name,
              "planned_peak_gib": plan_of.choice.estimate.peak / GIB,
              "planned_loop_gib": plan_of.choice.estimate.phases["loop"] / GIB}
    if rank < setup.num_dit:
        dit = random_dit(setup, plan_of.choice.mode.weights == "fp8")
        _init_group("gloo", rank, setup.world, store)
        serve_dit(rank, roles, dit, "gloo", plan_of)
    else:
        from liveavatar.engines.diffusion.model.dit_config import DiTConfig
        from liveavatar.engines.diffusion.runtime.dist_link import DistLink, broadcast_job, receive_blocks

        dec = decoder(setup, plan_of.choice.mode)
        cond = conditions(setup, DiTConfig.tiny() if setup.tiny else DiTConfig.wan_s2v_14b())
        dec.decode_next(cond["motion"].to(_device(setup), _dtype(setup))[:, :, :7])
        _init_group("gloo", rank, setup.world, store)
        plan = loop_plan(setup)
        broadcast_job(rank, rank, torch.device("cpu"), plan, cond)
        link = DistLink(rank, rank, torch.device("cpu"))
        frames: list = []
        like_ref = cond["ref"].to(_device(setup), _dtype(setup))
        _decode_all(dec, receive_blocks(link, plan, like_ref, lambda: cond["motion"], cond["motion"]), frames)
        dist.barrier()
        np.save(Path(setup.out) / "frames_multi.npy", np.concatenate(frames))
    report.update(_peaks(setup), seconds=time.perf_counter() - t0)
    (Path(setup.out) / f"worker{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


def single_process(setup: Setup, mode) -> tuple:
    """All four steps and the decode in this process, in the DiT workers' mode (uncapped)."""
    import numpy as np
    import torch

    from liveavatar.engines.diffusion.runtime.loop import StepCaches, denoise_blocks

    dev, dtype = _device(setup), _dtype(setup)
    dit = random_dit(setup, mode.weights == "fp8")
    plan = loop_plan(setup)
    cond = conditions(setup, dit.config)
    dec = decoder(setup, mode)
    dec.decode_next(cond["motion"].to(dev, dtype)[:, :, :7])
    caches = StepCaches.allocate(dit, plan, tuple(range(plan.sample_steps)), mode=mode.kv)
    cond = {k: v.to(dev) for k, v in cond.items()}
    text_ctx = dit.encode_text(cond["text"])
    frames: list = []
    with torch.no_grad():
        blocks = denoise_blocks(dit, text_ctx, cond["audio"], cond["ref"], cond["motion"], plan,
                                lambda: cond["motion"], caches=caches)
        _decode_all(dec, blocks, frames)
    return np.concatenate(frames)


def bf16_over_gloo_check() -> str:
    """gloo moves bf16 tensors (the GPU run's latents) bit for bit: two CPU processes, send + broadcast."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.get_context("spawn").Process(target=_bf16_peer, args=(tmp, 1)).start()
        _bf16_peer(tmp, 0)
        return (Path(tmp) / "bf16.txt").read_text()


def _bf16_peer(tmp: str, rank: int) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=2)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    buf = x.clone() if rank == 0 else torch.empty_like(x)
    dist.broadcast(buf, src=0)
    if rank == 0:
        dist.send(x, dst=1)
    else:
        got = torch.empty_like(x)
        dist.recv(got, src=0)
        (Path(tmp) / "bf16.txt").write_text(f"bf16 over gloo: broadcast equal {torch.equal(buf, x)}, "
                                            f"send/recv equal {torch.equal(got, x)}")
    dist.barrier()
    dist.destroy_process_group()


def main() -> int:
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, 64x64, gloo CPU processes (any machine)")
    ap.add_argument("--cap_gib", type=float, default=24.0, help="each worker's allocator cap (GiB)")
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--limit_gib", type=float, default=22.5, help="pass when every worker's max allocated is below")
    args = ap.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("error: no CUDA device; run with --cpu-smoke on a machine without one", file=sys.stderr)
        return 2
    out = tempfile.mkdtemp(prefix="emulate_tpp_")
    store = dist.TCPStore("127.0.0.1", 0, 5, True, wait_for_workers=False, timeout=timedelta(seconds=600))
    setup = Setup(tiny=args.cpu_smoke, cap_gib=args.cap_gib, clips=args.clips, num_dit=4, out=out, port=store.port)
    device = "CPU (gloo processes)" if setup.tiny else f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    print(f"device {device}; 4 DiT workers + 1 decode worker, each capped at {setup.cap_gib} GiB", flush=True)
    memory = memory_plan(setup)
    print("plan: " + memory.reason, flush=True)
    t0 = time.perf_counter()
    mp.start_processes(worker, args=(setup,), nprocs=setup.world, start_method="spawn", join=True)
    print(f"five workers done in {time.perf_counter() - t0:.0f} s", flush=True)
    reports = [json.loads((Path(out) / f"worker{r}.json").read_text()) for r in range(setup.world)]
    ok = True
    for r in reports:
        line = (f"WORKER {r['label']}: mode {r['mode']!r}, planned peak {r['planned_peak_gib']:.2f} GiB "
                f"(loop {r['planned_loop_gib']:.2f})")
        if "max_allocated_gib" in r:
            line += f", measured max allocated {r['max_allocated_gib']:.2f} GiB, reserved {r['max_reserved_gib']:.2f} GiB"
            ok &= r["max_allocated_gib"] <= args.limit_gib
        print(line, flush=True)
    multi = np.load(Path(out) / "frames_multi.npy")
    dit_mode = memory.for_rank(0).choice.mode
    if not setup.tiny:
        torch.cuda.empty_cache()
    single = single_process(setup, dit_mode)
    diff = np.abs(multi.astype(int) - single.astype(int)) if multi.shape == single.shape else None
    same = diff is not None and not diff.any()
    print(f"FRAMES {multi.shape} vs one process {single.shape}: "
          + ("equal bit for bit" if same else f"max |diff| {diff.max() if diff is not None else 'shape differs'}"
             f", mean {diff.mean() if diff is not None else float('nan'):.3f} uint8 levels"), flush=True)
    if setup.tiny:
        print(bf16_over_gloo_check(), flush=True)
    ok &= same
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
