"""`liveavatar doctor`: can this machine run the diffusion engine on K workers, and if not, why.

Each check gives a status (ok / warn / fail / info), what was found and a one-line fix. It runs
without torch (then says so) and on a machine without GPUs (then it checks the CPU path: the
2-worker collective runs over gloo).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass

from liveavatar.option_groups import doctor_defaults

UPSTREAM_PORT = 29103  # upstream's scripts rendezvous here (torchrun --master_port 29103)
NCCL_VARIABLES = {
    "NCCL_P2P_DISABLE": "1 routes GPU-to-GPU sends through host memory (slower); unset it unless peer access fails",
    "NCCL_IB_DISABLE": "1 disables InfiniBand (irrelevant on one machine)",
    "NCCL_DEBUG": "INFO/WARN makes NCCL explain failures; unset it for quiet runs",
    "NCCL_SOCKET_IFNAME": "the network interface NCCL uses for its bootstrap",
    "TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC": "how long NCCL's watchdog may be stuck before it kills the process",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING": "how a failed NCCL call ends the process (liveavatar sets 3 unless given)",
    "TORCH_NCCL_BLOCKING_WAIT": "1 makes every NCCL wait block the host (not needed: liveavatar's watchdog stops runs)",
    "CUDA_VISIBLE_DEVICES": "which GPUs this process sees",
}
COLLECTIVE_TIMEOUT_S = 60
PLANNED = doctor_defaults()  # the run doctor assumes, declared with GenerateConfig's DOCTOR options


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | info
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Request:
    """The run the user plans (GenerateConfig's DOCTOR options): memory is checked against it."""

    num_gpus_dit: int = PLANNED["num_gpus_dit"]
    sample_steps: int = PLANNED["sample_steps"]
    size: str = PLANNED["size"]
    infer_frames: int = PLANNED["infer_frames"]
    fp8: bool = PLANNED["fp8"]
    ckpt_dir: str | None = PLANNED["ckpt_dir"]
    enable_vae_parallel: bool | None = PLANNED["enable_vae_parallel"]


def run_checks(request: Request, collective: bool = True) -> list[Check]:
    checks: list[Check] = []
    if importlib.util.find_spec("torch") is None:
        checks.append(
            Check(
                "torch",
                "fail",
                "torch is not installed: only the preview engine can run",
                "pip install 'liveavatar[diffusion]'",
            )
        )
        checks.append(_port_check())
        checks += _nccl_variables()
        return checks
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    checks.append(_versions(torch, gpus))
    checks.append(_gpu_check(gpus, request))
    checks += _memory_checks(torch, gpus, request)
    checks += _peer_checks(torch, gpus)
    checks.append(_port_check())
    checks += _nccl_variables()
    if collective:
        checks.append(_collective_check("nccl" if gpus >= 2 else "gloo"))
    return checks


def _versions(torch, gpus: int) -> Check:
    parts = [f"torch {torch.__version__}"]
    if torch.version.cuda:
        parts.append(f"CUDA {torch.version.cuda}")
    driver = _driver_version()
    if driver:
        parts.append(f"driver {driver}")
    if gpus:
        try:
            parts.append("NCCL " + ".".join(map(str, torch.cuda.nccl.version())))
        except Exception:
            parts.append("NCCL not available")
    if torch.version.cuda is None:
        return Check(
            "versions",
            "info",
            ", ".join(parts) + " (a CPU build of torch)",
            "for GPUs install a CUDA build of torch==2.13 (pip index https://download.pytorch.org/whl/cu130)",
        )
    return Check("versions", "ok", ", ".join(parts))


def _driver_version() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def _gpu_check(gpus: int, request: Request) -> Check:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    k = request.num_gpus_dit
    if gpus == 0:
        return Check(
            "gpus",
            "info",
            f"no CUDA GPU visible{shown}: --num_gpus_dit {k} would run {k} CPU processes over gloo (slow)",
            "on a GPU machine check `nvidia-smi` and that CUDA_VISIBLE_DEVICES lists the GPUs",
        )
    if gpus < k:
        return Check(
            "gpus",
            "fail",
            f"{gpus} GPUs visible{shown}, --num_gpus_dit {k} needs {k}",
            "use fewer workers or list more GPUs in CUDA_VISIBLE_DEVICES",
        )
    extra = "a decode worker fits" if gpus > k else "no GPU left for a decode worker: the last DiT worker decodes"
    return Check("gpus", "ok", f"{gpus} GPUs visible{shown}; {k} DiT workers, {extra}")


def _dit_config(request: Request):
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    if request.ckpt_dir:
        try:
            from liveavatar.engines.diffusion.loading.checkpoint import read_config

            return read_config(request.ckpt_dir)
        except Exception:
            pass
    return DiTConfig.wan_s2v_14b()


def _memory_checks(torch, gpus: int, request: Request) -> list[Check]:
    if request.num_gpus_dit > request.sample_steps:
        return [
            Check(
                "memory",
                "fail",
                f"{request.num_gpus_dit} DiT workers cannot share {request.sample_steps} steps",
                f"use --num_gpus_dit {request.sample_steps} or fewer",
            )
        ]
    from liveavatar.planning.memory import cuda_budget

    # what CUDA reports free on each GPU (plus the context this process opened there to ask)
    free_total = [(cuda_budget(i), torch.cuda.get_device_properties(i).total_memory) for i in range(gpus)]
    return worker_memory_checks(request, free_total)


def worker_memory_checks(request: Request, free_total: list[tuple[int, int]]) -> list[Check]:
    """Each worker's memory plan (planner) against the free memory of ITS GPU (`free_total[gpu]`:
    bytes free and in all); without GPUs, what each worker needs."""
    from liveavatar.engines.diffusion.runtime.ranks import roles_for
    from liveavatar.errors import UserError
    from liveavatar.planning.memory import GIB, Workload, choose, share_workload, worker_shares
    from liveavatar.sizing import parse_size

    width, height = parse_size(request.size)
    k, steps = request.num_gpus_dit, request.sample_steps
    base = Workload(_dit_config(request), height, width, request.infer_frames, steps, num_frames=request.infer_frames)
    decode_worker = k > 1 and roles_for(k, request.enable_vae_parallel, len(free_total)).decode_worker
    shares = worker_shares(k, decode_worker, steps)
    what = f"{request.size}, {request.infer_frames} frames/clip, {steps} steps{', fp8' if request.fp8 else ''}"
    if not free_total:
        needs = []
        for share in shares:
            first = choose(share_workload(base, share), None, fp8_weights=request.fp8)
            needs.append(f"{share.label} about {first.estimate.peak / GIB:.1f} GiB ({first.mode.name})")
        return [
            Check(
                "memory", "info", f"for {what}: " + "; ".join(needs) + "; less in slower modes; no GPU here to compare"
            )
        ]
    out = []
    for share in shares:
        if share.gpu >= len(free_total):
            continue  # the gpus check says how many are missing
        free, total = free_total[share.gpu]
        name, have = f"memory gpu{share.gpu}", f"{free / GIB:.1f} of {total / GIB:.1f} GiB free"
        try:
            ch = choose(share_workload(base, share), free, fp8_weights=request.fp8, budget_source="free")
        except UserError as err:
            out.append(
                Check(
                    name,
                    "fail",
                    f"{share.label} fits no memory mode for {what}; {have} ({err.message})",
                    "free the GPU, or use more --num_gpus_dit, a smaller --size or --infer_frames",
                )
            )
            continue
        out.append(
            Check(
                name, "ok", f"{share.label}: {ch.mode.name}, about {ch.estimate.peak / GIB:.1f} GiB for {what}; {have}"
            )
        )
    return out


def _peer_checks(torch, gpus: int) -> list[Check]:
    if gpus < 2:
        return []
    blocked = [
        (i, j) for i in range(gpus) for j in range(gpus) if i != j and not torch.cuda.can_device_access_peer(i, j)
    ]
    if not blocked:
        return [Check("peer access", "ok", f"every pair of the {gpus} GPUs has direct peer access")]
    pairs = ", ".join(f"{i}->{j}" for i, j in blocked[:8])
    return [
        Check(
            "peer access",
            "warn",
            f"no direct peer access for {pairs}: sends go through host memory (slower)",
            "check `nvidia-smi topo -m`; if NCCL hangs on these pairs, set NCCL_P2P_DISABLE=1",
        )
    ]


def _port_check() -> Check:
    ports = sorted({UPSTREAM_PORT, int(os.environ.get("MASTER_PORT", UPSTREAM_PORT))})
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    if busy:
        return Check(
            "rendezvous port",
            "warn",
            f"port {busy[0]} is in use (another torchrun or a stale run?)",
            "stop that process, or give torchrun another --master_port (liveavatar's own launch picks a free port)",
        )
    return Check(
        "rendezvous port",
        "ok",
        f"port {', '.join(map(str, ports))} is free (liveavatar's own launch picks any free port)",
    )


def _nccl_variables() -> list[Check]:
    out = []
    for name, meaning in NCCL_VARIABLES.items():
        value = os.environ.get(name)
        if value is None:
            continue
        status = "warn" if name == "NCCL_P2P_DISABLE" and value == "1" else "info"
        out.append(
            Check(
                name,
                status,
                f"{name}={value}: {meaning}",
                f"unset {name} unless you need it" if status == "warn" else "",
            )
        )
    if not out:
        out.append(Check("nccl variables", "ok", "no NCCL variables set (liveavatar sets its timeouts itself)"))
    return out


def _collective_worker(rank: int, port: int, backend: str) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(rank)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    store = dist.TCPStore("127.0.0.1", port, 2, False, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    dist.init_process_group(
        backend, store=store, rank=rank, world_size=2, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    )
    x = torch.full((1024,), float(rank + 1), device=device)
    dist.all_reduce(x)
    y = torch.empty(1024, device=device)
    (dist.send(x, dst=1) if rank == 0 else dist.recv(y, src=0))
    dist.barrier()
    ok = float(x[0]) == 3.0 and (rank == 0 or float(y[0]) == 3.0)
    store.set(f"doctor/{rank}", "ok" if ok else "wrong sum")
    dist.destroy_process_group()


def _collective_check(backend: str) -> Check:
    from datetime import timedelta

    import torch.distributed as dist
    import torch.multiprocessing as mp

    started = time.monotonic()
    store = dist.TCPStore(
        "127.0.0.1", 0, 2, True, wait_for_workers=False, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    )
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_collective_worker, args=(r, store.port, backend), daemon=True) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(max(0.0, COLLECTIVE_TIMEOUT_S - (time.monotonic() - started)))
    hung = [p for p in procs if p.exitcode is None]
    for p in hung:
        p.kill()
        p.join(2)
    took = time.monotonic() - started
    results = [store.get(f"doctor/{r}").decode() if store.check([f"doctor/{r}"]) else None for r in range(2)]
    if hung:
        return Check(
            "collective",
            "fail",
            f"2-worker {backend} all-reduce + send did not finish in {COLLECTIVE_TIMEOUT_S} s",
            "run with NCCL_DEBUG=INFO; try NCCL_P2P_DISABLE=1; check the port and firewall",
        )
    if results != ["ok", "ok"]:
        return Check(
            "collective",
            "fail",
            f"2-worker {backend} collective failed (exit codes {[p.exitcode for p in procs]}, {results})",
            "run with NCCL_DEBUG=INFO to see why",
        )
    return Check(
        "collective",
        "ok",
        f"2 workers did an all-reduce, a send and a barrier over {backend} in {took:.1f} s (process start included)",
    )


def as_dict(checks: list[Check]) -> dict:
    return {"ok": not any(c.status == "fail" for c in checks), "checks": [asdict(c) for c in checks]}
