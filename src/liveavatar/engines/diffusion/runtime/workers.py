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
from collections.abc import Iterator
from datetime import timedelta

from liveavatar.config import GenerateConfig
from liveavatar.engines.diffusion.runtime.ranks import (
    FAULT_KEY,
    READY_KEY,
    Roles,
    WorkerFailed,
    WorkerSpec,
    _backend,
    _child_main,
    _init_group,
    plan_roles,
    timeout_s,
    torchrun_env,
)
from liveavatar.errors import UserError

REPORT_GRACE_S = 0.5  # after a worker ends, how long to wait for the others' reports of why
STOP_GRACE_S = 3.0  # SIGTERM, then SIGKILL after this long


def _describe_end(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"died: killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"died: killed by signal {-exitcode}"
    return f"exited with code {exitcode} without saying why (out of host memory?)"


class Team:
    """The DiT workers of one engine, seen from the decoding rank (this process)."""

    def __init__(self, config: GenerateConfig, roles: Roles, torchrun: bool, memory=None) -> None:
        self.config, self.roles, self.torchrun = config, roles, torchrun
        # the planner's RunMemory when it planned these ranks (every worker runs its own plan's mode)
        self.memory = memory if memory is not None and len(getattr(memory, "workers", ())) == roles.world else None
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
    def launch(cls, config: GenerateConfig, layout=None, memory=None) -> Team | None:
        """None for one worker; else the team, its spawned workers already loading (`memory`: the
        planner's RunMemory, whose per-rank plans the workers follow)."""
        if config.num_gpus_dit <= 1:
            return None
        team = cls(config, plan_roles(config), torchrun_env() is not None, memory)
        if not team.torchrun:
            team._spawn()
        return team

    def _spawn(self) -> None:
        import torch.distributed as dist
        import torch.multiprocessing as mp

        self._store = dist.TCPStore(
            "127.0.0.1", 0, self.roles.world, True, wait_for_workers=False, timeout=timedelta(seconds=timeout_s())
        )
        ctx = mp.get_context("spawn")
        for rank in range(self.roles.world):
            if rank == self.roles.decoder:
                continue
            plan = self.memory.for_rank(rank) if self.memory is not None else None
            spec = WorkerSpec(rank, self.roles, self.config, self._store.port, os.getpid(), plan)
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

        from liveavatar.engines.diffusion.runtime.caches import RESIDENT
        from liveavatar.engines.diffusion.runtime.dist_link import DistLink, broadcast_job, comm_device, receive_blocks
        from liveavatar.engines.diffusion.runtime.loop import StepCaches, denoise_blocks, split_steps
        from liveavatar.engines.diffusion.runtime.memory_notes import worker_notes

        if self.backend == "gloo" and not self.torchrun:
            notify(
                f"note: no CUDA device: {self.roles.num_dit} DiT workers{' + 1 decode worker' if self.decode_worker else ''} "
                "run as CPU processes over gloo (a correctness mode: slow)"
            )
        for line in worker_notes(self.config, plan, self.roles, self.memory):
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
                form = self.memory.for_rank(rank).choice.mode.kv if self.memory is not None else RESIDENT
                blocks = denoise_blocks(
                    dit,
                    text_ctx,
                    audio,
                    ref,
                    motion,
                    plan,
                    link.motion(checked_motion, motion),
                    stage=stage,
                    link=link,
                    caches=StepCaches.allocate(dit, plan, stage.steps, form),
                )
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
