"""What every rank of a K-worker run does, and the roles: who runs which steps, who decodes.

A DiT rank loads the DiT, joins the process group, receives the job (the loop plan and the
conditions) from the decoding rank and runs its steps of the one loop (``serve_dit``). It is
started by ``workers.Team`` (``_child_main``) or by torchrun (``serve_torchrun_rank``). A rank that
fails writes why to the rendezvous store, where the launcher reads it to name the worker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta

from liveavatar.config import MAX_SAMPLE_STEPS, GenerateConfig
from liveavatar.errors import UserError

DEFAULT_TIMEOUT_S = 1800
FAULT_KEY = "liveavatar/fault/"
READY_KEY = "liveavatar/ready/"


@dataclass(frozen=True)
class Roles:
    """Who does what: ``num_dit`` DiT ranks, then the decode worker when there is one."""

    num_dit: int
    decode_worker: bool

    @property
    def world(self) -> int:
        return self.num_dit + int(self.decode_worker)

    @property
    def decoder(self) -> int:
        return self.world - 1

    def describe(self, rank: int, num_steps: int | None = None) -> str:
        if self.decode_worker and rank == self.decoder:
            return f"worker {rank} (decode)"
        if num_steps is None:
            return f"worker {rank} (DiT)"
        from liveavatar.engines.diffusion.runtime.loop import split_steps

        steps = split_steps(num_steps, self.num_dit)[rank].steps
        span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
        return f"worker {rank} (DiT {span})" + (" + decode" if rank == self.decoder else "")

    def gpu(self, rank: int, torchrun: bool = False) -> int:
        """The CUDA device of `rank`: torchrun's local rank; spawned, the launching (decoding) process
        keeps GPU 0 and DiT rank r takes GPU r + 1."""
        if torchrun:
            return rank
        return 0 if rank == self.decoder else rank + 1


class WorkerFailed(RuntimeError):
    """A worker of a multi-worker run failed; the message names it and the cause."""


def timeout_s() -> int:
    return int(os.environ.get("LIVEAVATAR_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def torchrun_env() -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` when torchrun (or another env:// launcher) started us."""
    env = os.environ
    if not all(k in env for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")) or int(env["WORLD_SIZE"]) < 2:
        return None
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"]))


def plan_roles(config: GenerateConfig) -> Roles:
    """How many ranks and whether one of them only decodes; UserError when the machine can't."""
    import torch

    k = config.num_gpus_dit
    steps = config.sample_steps
    if steps is not None and k > steps:
        more_steps = (
            f", or --sample_steps {k} or more" if k <= MAX_SAMPLE_STEPS else ""
        )  # only advice that can be followed
        raise UserError(
            "--num_gpus_dit",
            f"{k} DiT workers cannot share {steps} denoising steps: each worker runs at least one step",
            f"use --num_gpus_dit {steps} or fewer{more_steps}",
        )
    want = config.enable_vae_parallel
    launched = torchrun_env()
    if launched is not None:
        world = launched[1]
        if world not in (k, k + 1):
            raise UserError(
                "--num_gpus_dit",
                f"torchrun started {world} processes for {k} DiT workers",
                f"use torchrun --nproc_per_node {k} (the last DiT rank decodes) or {k + 1} (plus a decode worker)",
            )
        return Roles(k, world == k + 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and gpus < k + int(bool(want)):
        need = k + int(bool(want))
        raise UserError(
            "--num_gpus_dit",
            f"{need} GPUs needed ({k} DiT workers{' + 1 decode' if want else ''}) but {gpus} are visible",
            "use fewer workers, or make more GPUs visible (CUDA_VISIBLE_DEVICES; run `liveavatar doctor`)",
        )
    return roles_for(k, want, gpus)


def roles_for(num_dit: int, want_decode_worker: bool | None, gpus: int) -> Roles:
    """The roles without a launcher's word: a decode worker when asked for, or (not said) when a GPU
    is left over; CPU processes (no GPU) get one only when asked for."""
    if gpus == 0 or want_decode_worker is not None:
        return Roles(num_dit, bool(want_decode_worker))
    return Roles(num_dit, gpus > num_dit)


def _backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def _init_group(backend: str, rank: int, world: int, store=None) -> None:
    import torch.distributed as dist

    limit = timeout_s()
    if backend == "nccl":
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "3")
        os.environ.setdefault("TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC", str(limit + 60))
    kw = dict(store=dist.PrefixStore("pg", store)) if store is not None else dict(init_method="env://")
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=limit), **kw)


def _report(store, rank: int, exc: BaseException) -> None:
    """Leave why this worker stops where the launcher reads it (best effort: the store may be gone)."""
    if isinstance(exc, UserError):
        info = {"kind": "user", "input": exc.input, "message": exc.message, "fix": exc.fix}
    else:
        text = " ".join(str(exc).split()) or type(exc).__name__
        comm = type(exc).__name__ in ("DistBackendError", "DistNetworkError") or "onnection" in text or "gloo" in text
        info = {"kind": "comm" if comm else "error", "text": f"{type(exc).__name__}: {text}"[:500]}
    try:
        store.set(f"{FAULT_KEY}{rank}", json.dumps(info))
    except Exception:
        pass


def serve_dit(rank: int, roles: Roles, dit, backend: str, memory=None) -> None:
    """One DiT rank's part of one video: receive the job, run its steps of the one loop in the mode
    its memory plan chose (`memory`: the rank's WorkerPlan; None: as loaded, resident caches)."""
    import sys

    import torch.distributed as dist

    from liveavatar.engines.diffusion.runtime.dist_link import DistLink, broadcast_job, comm_device
    from liveavatar.engines.diffusion.runtime.loop import split_steps
    from liveavatar.engines.diffusion.runtime.stage import run_stage
    from liveavatar.planning.memory import default_mode, modes_after

    device = comm_device(backend)
    plan, job = broadcast_job(rank, roles.decoder, device)
    job = {k: v.to(dit.device) for k, v in job.items()}  # a link staged through host memory (gloo) with CUDA workers
    stage = split_steps(plan.sample_steps, roles.num_dit)[rank]
    mode = memory.choice.mode if memory is not None else default_mode(getattr(dit, "fp8", False))
    later = memory.choice.later if memory is not None else modes_after(mode)
    if dit.device.type == "cuda":
        _require_worker_room(dit, plan, stage.steps, mode)
    text_ctx = dit.encode_text(job["text"].to(dit.device))
    link = DistLink(rank, roles.decoder, device)
    label = roles.describe(rank, plan.sample_steps)

    def say(line: str) -> None:  # this process's stderr is the run's
        print(line.replace("note: ", f"note: {label}: ", 1), file=sys.stderr, flush=True)

    run_stage(dit, text_ctx, job, plan, stage, link, mode, later, say, label)
    link.flush()
    dist.barrier()


def _require_worker_room(dit, plan, steps: tuple[int, ...], mode) -> None:
    import torch

    from liveavatar.engines.diffusion.runtime.memory_notes import require_room, worker_estimate

    free, _ = torch.cuda.mem_get_info(dit.device)
    est = worker_estimate(dit.config, plan, len(steps), torch.finfo(dit.dtype).bits // 8, mode)
    # the weights are loaded already: what is free has to hold the rest
    require_room(est, free + est.components["dit_weights"], f"the worker of steps {list(steps)}")


@dataclass(frozen=True)
class WorkerSpec:
    rank: int
    roles: Roles
    config: GenerateConfig
    store_port: int
    parent_pid: int
    memory: object = None  # planning.memory.WorkerPlan of this rank (None: no plan; as configured)


def _require_planned_room(plan, label: str) -> None:
    """UserError when this GPU's free memory is below the worker's planned peak (nothing loaded yet)."""
    import torch

    from liveavatar.engines.diffusion.runtime.memory_notes import require_room

    free, _ = torch.cuda.mem_get_info()
    require_room(plan.choice.estimate, free, label)


def _child_main(spec: WorkerSpec) -> None:
    """A spawned DiT rank: load the DiT, join the group, serve the job, exit (os._exit: no teardown waits)."""
    import torch
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", spec.store_port, spec.roles.world, False, timeout=timedelta(seconds=timeout_s()))
    try:
        from liveavatar.engines.diffusion.loading.build import build_dit
        from liveavatar.engines.diffusion.loading.layout import resolve_layout
        from liveavatar.engines.diffusion.loading.precision import model_dtype

        backend = _backend()
        if backend == "nccl":
            torch.cuda.set_device(spec.roles.gpu(spec.rank))  # the launching process keeps GPU 0 (it decodes)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        dtype = model_dtype(device)
        plan = spec.memory
        if plan is not None and backend == "nccl":  # refused before any weight loads
            _require_planned_room(plan, spec.roles.describe(spec.rank, spec.config.sample_steps))
        fp8 = plan.choice.mode.weights == "fp8" if plan is not None else None
        dit, _ = build_dit(
            spec.config, resolve_layout(spec.config.ckpt_dir, spec.config.lora_path_dmd), device, dtype, fp8
        )
        store.set(f"{READY_KEY}{spec.rank}", "1")
        _init_group(backend, spec.rank, spec.roles.world, store)
        serve_dit(spec.rank, spec.roles, dit, backend, plan)
    except BaseException as exc:  # noqa: BLE001 - every cause is reported, none printed
        if os.environ.get("LIVEAVATAR_WORKER_TRACEBACKS"):
            import traceback

            traceback.print_exc()
        _report(store, spec.rank, exc)
        os._exit(1)
    os._exit(0)


def serve_torchrun_rank(config: GenerateConfig) -> int | None:
    """Under torchrun, a DiT rank that does not decode serves its steps and returns 0; else None."""
    launched = torchrun_env()
    if launched is None or config.num_gpus_dit <= 1:
        return None
    config = config.resolve()
    roles = plan_roles(config)
    rank, _, local_rank = launched
    if rank == roles.decoder:
        return None
    import torch
    import torch.distributed as dist

    from liveavatar.engines.diffusion.loading.build import build_dit
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.engines.diffusion.loading.precision import model_dtype

    backend = _backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    layout = resolve_layout(config.ckpt_dir, config.lora_path_dmd)
    layout.require_complete()
    dit, _ = build_dit(config, layout, device, model_dtype(device))
    _init_group(backend, rank, roles.world)
    try:
        serve_dit(rank, roles, dit, backend)
    except BaseException as exc:
        _report(dist.distributed_c10d._get_default_store(), rank, exc)
        raise
    dist.destroy_process_group()
    return 0
