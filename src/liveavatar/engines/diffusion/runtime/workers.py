"""K DiT workers on one machine: launch, the job, faults (timestep-forcing pipeline parallelism).

``liveavatar generate --num_gpus_dit K`` starts the workers itself: this process becomes the
decoding rank (it writes the video) and spawns the K DiT ranks it is not (``Team.launch``). Under
``torchrun`` every rank is started by torchrun instead: the decoding rank runs the normal command,
the others call :func:`serve_torchrun_rank` from ``liveavatar generate`` and write nothing. NCCL on
GPUs, gloo on a machine without CUDA (K CPU processes: the correctness mode the tests use).

Faults: a spawned worker that raises writes the cause to the rendezvous store and exits; the
watchdog thread here sees any worker end (raised, killed, out of memory), waits ``REPORT_GRACE_S``
for the cause to arrive, then stops every other worker. That closes their sockets, so a call
still waiting in this process fails at once and is re-raised as one :class:`WorkerFailed` naming
the worker and the cause. The process-group timeout (``LIVEAVATAR_DIST_TIMEOUT_S``, 30 min) only
bounds a worker that hangs while alive; it is long because the first block waits for every worker
to load and compile. NCCL's watchdog: ``TORCH_NCCL_ASYNC_ERROR_HANDLING=3`` and
``TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC`` = that timeout + 60 s are set unless the user set them.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

from liveavatar.config import GenerateConfig
from liveavatar.errors import UserError

DEFAULT_TIMEOUT_S = 1800
REPORT_GRACE_S = 0.5  # after a worker ends, how long to wait for the others' reports of why
STOP_GRACE_S = 3.0  # SIGTERM, then SIGKILL after this long
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
        raise UserError("--num_gpus_dit", f"{k} DiT workers cannot share {steps} denoising steps: each worker runs at least one step",
                        f"use --num_gpus_dit {steps} or fewer, or --sample_steps {k} or more")
    want = config.enable_vae_parallel
    launched = torchrun_env()
    if launched is not None:
        world = launched[1]
        if world not in (k, k + 1):
            raise UserError("--num_gpus_dit", f"torchrun started {world} processes for {k} DiT workers",
                            f"use torchrun --nproc_per_node {k} (the last DiT rank decodes) or {k + 1} (plus a decode worker)")
        return Roles(k, world == k + 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0:
        return Roles(k, bool(want))  # CPU processes: a decode worker only when asked for
    if gpus < k + int(bool(want)):
        need = k + int(bool(want))
        raise UserError("--num_gpus_dit", f"{need} GPUs needed ({k} DiT workers{' + 1 decode' if want else ''}) but {gpus} are visible",
                        "use fewer workers, or make more GPUs visible (CUDA_VISIBLE_DEVICES; run `liveavatar doctor`)")
    return Roles(k, gpus > k if want is None else bool(want))


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


def serve_dit(rank: int, roles: Roles, dit, backend: str) -> None:
    """One DiT rank's part of one video: receive the job, run its steps of the one loop."""
    import torch
    import torch.distributed as dist

    from liveavatar.engines.diffusion.runtime.dist_link import DistLink, broadcast_job, comm_device
    from liveavatar.engines.diffusion.runtime.loop import denoise_blocks, split_steps

    device = comm_device(backend)
    plan, job = broadcast_job(rank, roles.decoder, device)
    stage = split_steps(plan.sample_steps, roles.num_dit)[rank]
    if dit.device.type == "cuda":
        _require_worker_room(dit, plan, stage.steps)
    text_ctx = dit.encode_text(job["text"].to(dit.device))
    link = DistLink(rank, roles.decoder, device)
    next_motion = link.motion(None, job["motion"])
    with torch.no_grad():
        for block in denoise_blocks(dit, text_ctx, job["audio"].to(dit.device), job["ref"], job["motion"], plan,
                                    next_motion, stage=stage, link=link):
            link.send(block.task, block.latents)  # the last DiT rank hands clean latents to the decode worker
    link.flush()
    dist.barrier()


def _require_worker_room(dit, plan, steps: tuple[int, ...]) -> None:
    import torch

    from liveavatar.engines.diffusion.memory import require_room
    from liveavatar.engines.diffusion.runtime.memory_notes import worker_budget

    free, _ = torch.cuda.mem_get_info(dit.device)
    h, w = plan.latent_hw
    require_room(worker_budget(dit.config, plan, len(steps), torch.finfo(dit.dtype).bits // 8), free,
                 (h * 8, w * 8), plan.frames_per_clip)


@dataclass(frozen=True)
class WorkerSpec:
    rank: int
    roles: Roles
    config: GenerateConfig
    store_port: int
    parent_pid: int


def _child_main(spec: WorkerSpec) -> None:
    """A spawned DiT rank: load the DiT, join the group, serve the job, exit (os._exit: no teardown waits)."""
    import torch
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", spec.store_port, spec.roles.world, False, timeout=timedelta(seconds=timeout_s()))
    try:
        from liveavatar.engines.diffusion.engine import build_dit
        from liveavatar.engines.diffusion.layout import resolve_layout

        backend = _backend()
        if backend == "nccl":
            torch.cuda.set_device(spec.rank + 1)  # the launching process keeps GPU 0 (it decodes)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        dtype = torch.bfloat16 if backend == "nccl" else torch.float32
        dit, _ = build_dit(spec.config, resolve_layout(spec.config.ckpt_dir, spec.config.lora_path_dmd), device, dtype)
        store.set(f"{READY_KEY}{spec.rank}", "1")
        _init_group(backend, spec.rank, spec.roles.world, store)
        serve_dit(spec.rank, spec.roles, dit, backend)
    except BaseException as exc:  # noqa: BLE001 - every cause is reported, none printed
        if os.environ.get("LIVEAVATAR_WORKER_TRACEBACKS"):
            import traceback

            traceback.print_exc()
        _report(store, spec.rank, exc)
        os._exit(1)
    os._exit(0)


def _describe_end(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"died: killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"died: killed by signal {-exitcode}"
    return f"exited with code {exitcode} without saying why (out of host memory?)"


class Team:
    """The DiT workers of one engine, seen from the decoding rank (this process)."""

    def __init__(self, config: GenerateConfig, roles: Roles, torchrun: bool) -> None:
        self.config, self.roles, self.torchrun = config, roles, torchrun
        self.backend = _backend()
        self._procs: dict[int, object] = {}
        self._store = None
        self._fault: str | None = None
        self._fault_error: UserError | None = None
        self._done = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def decode_worker(self) -> bool:
        return self.roles.decode_worker

    @classmethod
    def launch(cls, config: GenerateConfig, layout=None) -> "Team | None":
        """None for one worker; else the team, its spawned workers already loading."""
        if config.num_gpus_dit <= 1:
            return None
        team = cls(config, plan_roles(config), torchrun_env() is not None)
        if not team.torchrun:
            team._spawn()
        return team

    def _spawn(self) -> None:
        import torch.distributed as dist
        import torch.multiprocessing as mp

        self._store = dist.TCPStore("127.0.0.1", 0, self.roles.world, True, wait_for_workers=False,
                                    timeout=timedelta(seconds=timeout_s()))
        ctx = mp.get_context("spawn")
        for rank in range(self.roles.world):
            if rank == self.roles.decoder:
                continue
            spec = WorkerSpec(rank, self.roles, self.config, self._store.port, os.getpid())
            proc = ctx.Process(target=_child_main, args=(spec,), daemon=True, name=f"liveavatar-dit-{rank}")
            proc.start()
            self._procs[rank] = proc
        self._watchdog = threading.Thread(target=self._watch, daemon=True, name="liveavatar-watchdog")
        self._watchdog.start()

    @property
    def pids(self) -> dict[int, int]:
        return {rank: p.pid for rank, p in self._procs.items()}

    # -- faults ---------------------------------------------------------------------------
    def _watch(self) -> None:
        from multiprocessing.connection import wait

        alive = {p.sentinel: rank for rank, p in self._procs.items()}
        while alive and not self._done.is_set():
            for sentinel in wait(list(alive), timeout=0.2):
                rank = alive.pop(sentinel)
                if self._procs[rank].exitcode == 0 or self._done.is_set():
                    continue  # finished its part of the job
                time.sleep(REPORT_GRACE_S)
                self._fault = self._diagnose()
                self._stop_workers()
                return

    def _diagnose(self) -> str:
        """The most telling cause: an input problem, a worker's own error, a death, a lost link."""
        reports = {}
        for rank in self._procs:
            try:
                if self._store.check([f"{FAULT_KEY}{rank}"]):
                    reports[rank] = json.loads(self._store.get(f"{FAULT_KEY}{rank}"))
            except Exception:
                pass
        steps = self.config.sample_steps
        for kind in ("user", "error"):
            for rank, info in sorted(reports.items()):
                if info["kind"] == kind:
                    if kind == "user":
                        self._fault_error = UserError(info["input"], info["message"], info["fix"])
                        return f"{self.roles.describe(rank, steps)}: {self._fault_error.one_line()[7:]}"
                    return f"{self.roles.describe(rank, steps)} failed: {info['text']}"
        for rank, proc in sorted(self._procs.items()):
            if rank not in reports and proc.exitcode not in (None, 0):
                return f"{self.roles.describe(rank, steps)}, pid {proc.pid}, {_describe_end(proc.exitcode)}"
        rank, info = min(reports.items()) if reports else (None, None)
        return f"{self.roles.describe(rank, steps)} lost its link: {info['text']}" if info else "a worker stopped"

    def _stop_workers(self) -> None:
        for proc in self._procs.values():
            if proc.exitcode is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()
                proc.join(1.0)
        if self.backend == "nccl":  # an NCCL call does not notice a dead peer: abort ours
            try:
                import torch.distributed as dist

                dist.distributed_c10d._abort_process_group()
            except Exception:
                pass

    def _raise_fault(self) -> None:
        if self._fault is not None:
            raise WorkerFailed(self._fault)

    def _failure(self, exc: BaseException) -> BaseException:
        """What to raise in this process after ``exc``: the workers' fault if there is one."""
        if not self.torchrun:
            deadline = time.monotonic() + REPORT_GRACE_S + STOP_GRACE_S + 2
            while self._fault is None and self._watchdog.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        elif self._store is not None:
            self._fault = self._diagnose_torchrun()
        if self._fault_error is not None:
            return self._fault_error
        return WorkerFailed(self._fault) if self._fault else exc

    def _diagnose_torchrun(self) -> str | None:
        for rank in range(self.roles.world):
            try:
                if self._store.check([f"{FAULT_KEY}{rank}"]):
                    info = json.loads(self._store.get(f"{FAULT_KEY}{rank}"))
                    return f"{self.roles.describe(rank, self.config.sample_steps)} failed: {info.get('text') or info.get('message')}"
            except Exception:
                return None
        return None

    # -- the job ------------------------------------------------------------------------
    def _join_group(self) -> None:
        import torch
        import torch.distributed as dist

        if self.torchrun:
            torch.cuda.is_available() and torch.cuda.set_device(torchrun_env()[2])
            _init_group(self.backend, self.roles.decoder, self.roles.world)
            self._store = dist.distributed_c10d._get_default_store()
            return
        for rank in self._procs:  # every worker has loaded its DiT (or the watchdog says why not)
            while not self._store.check([f"{READY_KEY}{rank}"]):
                if self._fault is not None or not self._watchdog.is_alive():
                    raise WorkerFailed(self._fault or "a worker stopped while loading")
                time.sleep(0.05)
        _init_group(self.backend, self.roles.decoder, self.roles.world, self._store)

    def run(self, dit, text, audio, ref, motion, plan, next_motion, notify) -> Iterator:
        """Yield each block's clean latents on this (decoding) rank; the workers run the other steps."""
        import torch
        import torch.distributed as dist

        from liveavatar.engines.diffusion.runtime.dist_link import (DistLink, broadcast_job, comm_device,
                                                                      receive_blocks)
        from liveavatar.engines.diffusion.runtime.loop import denoise_blocks, split_steps
        from liveavatar.engines.diffusion.runtime.memory_notes import worker_notes

        if self.backend == "gloo" and not self.torchrun:
            notify(f"note: no CUDA device: {self.roles.num_dit} DiT workers{' + 1 decode worker' if self.decode_worker else ''} "
                   "run as CPU processes over gloo (a correctness mode: slow)")
        for line in worker_notes(self.config, plan, self.roles):
            notify(line)
        finished = False
        try:
            self._join_group()
            rank, device = self.roles.decoder, comm_device(self.backend)
            tensors = {"text": text, "audio": audio, "ref": ref, "motion": motion}
            broadcast_job(rank, rank, device, plan, tensors)
            link = DistLink(rank, rank, device)

            def checked_motion():  # re-encoding the motion takes a while: not after a worker failed
                self._raise_fault()
                return next_motion()

            if self.decode_worker:
                blocks = receive_blocks(link, plan, ref, checked_motion, motion)
            else:
                stage = split_steps(plan.sample_steps, self.roles.num_dit)[rank]
                text_ctx = dit.encode_text(text.to(dit.device))
                blocks = denoise_blocks(dit, text_ctx, audio, ref, motion, plan, link.motion(checked_motion, motion),
                                        stage=stage, link=link)
            for block in blocks:
                self._raise_fault()  # stop at the next block boundary, not at the next call that fails
                yield block
            dist.barrier()
            finished = True
        except Exception as exc:
            failure = self._failure(exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self._done.set()
            if not finished and not self.torchrun:
                self._stop_workers()
            for proc in self._procs.values():
                proc.join(STOP_GRACE_S)
            if dist.is_initialized() and (finished or self.backend == "gloo"):
                dist.destroy_process_group()
            self._procs.clear()
            if not self.torchrun and self._store is not None:
                self._store = None
            if not finished:
                torch.cuda.empty_cache() if torch.cuda.is_available() else None


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

    from liveavatar.engines.diffusion.engine import build_dit
    from liveavatar.engines.diffusion.layout import resolve_layout

    backend = _backend()
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    layout = resolve_layout(config.ckpt_dir, config.lora_path_dmd)
    layout.require_complete()
    dit, _ = build_dit(config, layout, device, torch.bfloat16 if backend == "nccl" else torch.float32)
    _init_group(backend, rank, roles.world)
    try:
        serve_dit(rank, roles, dit, backend)
    except BaseException as exc:
        _report(dist.distributed_c10d._get_default_store(), rank, exc)
        raise
    dist.destroy_process_group()
    return 0
