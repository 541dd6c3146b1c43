"""The job queue: jobs in memory (written through to SQLite), workers that call `pipeline.run`.

Jobs run in submission order, at most ``settings.workers`` at a time, on the one resident engine.
A job's files live in its own folder ``<data>/jobs/<id>/`` (the inputs under fixed names, the
video, its partial); ids are generated here, never taken from a request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections import deque
from pathlib import Path

from liveavatar.engines.base import Engine
from liveavatar.serve.job import TERMINAL, VIDEO, Job, QueueFull, add_once, new_job_id, sound_job
from liveavatar.serve.settings import ServeSettings
from liveavatar.serve.store import JobStore, private_folders


class JobQueue:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.engine: Engine | None = None  # set by start(), once it is built
        self.jobs_dir, state_dir = private_folders(settings.data_dir)
        self._store = JobStore(state_dir / "jobs.sqlite3")
        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[str] = deque()
        self._seq = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # --- life cycle -------------------------------------------------------------------------
    def recover(self) -> None:
        """Load the jobs of an earlier run: queued ones queue again; one that was running continues.

        A job that was running when the server died is re-queued to resume (as ``generate
        --resume``) from the last clip that is whole in both its resume record and its partial
        video, so it finishes as the video an uninterrupted job makes. Only when that is impossible
        (no readable record, inputs gone) it is failed, keeping what it wrote as its partial video.
        """
        from liveavatar.media.writer import partial_path

        records = self._store.load()
        self._remove_orphans(self._store.ids())  # every row's id, damaged ones too: their files stay
        for record in records:
            job = sound_job(record, self.settings.keep_s)
            if job is None:
                continue
            self._seq = max(self._seq, job.seq)
            if job.status == "in_progress":
                why_not, done = self._resumable(job)
                if why_not is None:
                    job.status, job.growing, job.started_at, job.resume = "queued", None, None, True
                    job.frames_done = job.resumed_from = done
                    job.warnings = [
                        *job.warnings,
                        "note: the server restarted while this video was being made; "
                        "it continues from its last complete clip",
                    ]
                else:
                    kept = self._keep_growing(job, partial_path(self.folder(job.id) / VIDEO))
                    job.status, job.finished_at, job.growing, job.partial = "failed", time.time(), None, kept
                    job.error = {
                        "code": "server_stopped",
                        "message": "the server stopped while this video was being made"
                        + ("; the frames made so far are the partial video" if kept else "")
                        + f"; it could not be continued: {why_not}",
                    }
                self._store.save(job.id, job.seq, job.record())
            self._jobs[job.id] = job
            if job.status == "queued":
                self._waiting.append(job.id)

    def _remove_orphans(self, known: set) -> None:
        """Job folders without a record: uploads a killed server never finished receiving."""
        for folder in self.jobs_dir.iterdir():
            if folder.name.startswith("video_") and folder.name not in known and folder.is_dir():
                logging.getLogger("liveavatar.serve").warning(
                    "removing %s: an upload that never became a job", folder.name
                )
                shutil.rmtree(folder, ignore_errors=True)

    def _resumable(self, job: Job) -> tuple[str | None, int]:
        """``(None, frames kept)`` when ``job`` can continue where it stopped, else ``(why not, 0)``."""
        from liveavatar import resume
        from liveavatar.errors import UserError

        folder = self.folder(job.id)
        if not ((folder / job.image).is_file() and (folder / job.audio).is_file()):
            return "its inputs are gone", 0
        if (folder / VIDEO).is_file():  # finished just before the crash: the resumed run says so and completes
            return None, int(job.plan["num_frames"])
        try:
            record = resume.read_record(resume.record_path(folder / VIDEO))
        except UserError:
            return "its resume record cannot be read", 0
        if record is None:
            return "it left no resume record", 0
        return None, record.frames_done

    @staticmethod
    def _keep_growing(job: Job, partial: Path) -> bool:
        if partial.exists():
            return True
        if job.growing and Path(job.growing).is_file() and Path(job.growing).stat().st_size > 0:
            os.replace(job.growing, partial)
            return True
        return False

    def start(self, engine: Engine) -> None:
        """Run the queued jobs on ``engine`` (kept resident for every job)."""
        self.engine = engine
        for i in range(self.settings.workers):
            self._threads.append(threading.Thread(target=self._work, name=f"liveavatar-worker-{i}", daemon=True))
        self._threads.append(threading.Thread(target=self._janitor, name="liveavatar-janitor", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; a running job stops at its next block and is continued at the next start
        (or, when it cannot be, fails with its partial)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._store.close()

    # --- queries ----------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._cond:
            return sorted(self._jobs.values(), key=lambda j: j.seq)

    def position(self, job: Job) -> int | None:
        with self._cond:
            return self._waiting.index(job.id) if job.status == "queued" and job.id in self._waiting else None

    def view(self, job: Job) -> dict:
        return job.view(self.settings.keep_s, self.position(job))

    def views(self) -> list[dict]:
        """Every job's API object, oldest first; one that cannot be shown is left out with a warning."""
        out = []
        for job in self.list():
            try:
                out.append(self.view(job))
            except Exception as exc:  # a record that slipped past the checks must not break the list
                logging.getLogger("liveavatar.serve").warning(
                    "job %s left out of the list: %s: %s", job.id, type(exc).__name__, exc
                )
        return out

    @property
    def started(self) -> bool:
        return self.engine is not None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def full(self) -> bool:
        return len(self._waiting) >= self.settings.limits.queue

    # --- changes ----------------------------------------------------------------------------
    def new_folder(self) -> tuple[str, Path]:
        job_id = new_job_id()
        folder = self.folder(job_id)
        folder.mkdir(mode=0o700)
        return job_id, folder

    def add(
        self, job_id: str, prompt: str, image: str, audio: str, options: dict, plan: dict, warnings: list[str]
    ) -> Job:
        with self._cond:
            if self._stopping or len(self._waiting) >= self.settings.limits.queue:
                raise QueueFull()
            self._seq += 1
            job = Job(
                id=job_id,
                seq=self._seq,
                created_at=time.time(),
                prompt=prompt,
                image=image,
                audio=audio,
                options=options,
                plan=plan,
                warnings=warnings,
            )
            self._store.save(job.id, job.seq, job.record())  # first: a record it refuses is never queued
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._cond.notify()
        return job

    def _update(self, job: Job, **changes) -> None:
        with self._cond:
            for name, value in changes.items():
                setattr(job, name, value)
            job.version += 1
            self._store.save(job.id, job.seq, job.record())
            self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """Queued: cancelled now. Running: stops after its current block, keeping what it made."""
        with self._cond:
            if job.status == "queued":
                self._waiting.remove(job.id)
                self._update(job, status="cancelled", finished_at=time.time())
            elif job.status == "in_progress":
                job.cancel_requested = True

    def delete(self, job: Job) -> None:
        """Forget a finished job and delete its files."""
        with self._cond:
            self._jobs.pop(job.id, None)
            self._store.delete(job.id)
        shutil.rmtree(self.folder(job.id), ignore_errors=True)

    def expire(self, now: float | None = None) -> list[str]:
        """Delete the jobs that finished more than ``keep_s`` ago; their ids."""
        now = time.time() if now is None else now
        old = [
            j
            for j in self.list()
            if j.status in TERMINAL and j.finished_at is not None and now - j.finished_at > self.settings.keep_s
        ]
        for job in old:
            self.delete(job)
        return [j.id for j in old]

    # --- workers ----------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._cond:
            while not self._stopping and not self._waiting:
                self._cond.wait()
            if self._stopping:
                return None
            job = self._jobs[self._waiting.popleft()]
            self._update(job, status="in_progress", started_at=time.time())
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)

    def _janitor(self) -> None:
        period = min(60.0, max(self.settings.keep_s / 10, 0.5))
        with self._cond:
            while not self._stopping:
                self._cond.wait(period)
                if not self._stopping:
                    self._cond.release()
                    try:
                        self.expire()
                    finally:
                        self._cond.acquire()

    def _run(self, job: Job) -> None:
        from liveavatar import pipeline
        from liveavatar.errors import UserError
        from liveavatar.hooks import Hooks, Stopped
        from liveavatar.media.writer import partial_path

        folder = self.folder(job.id)
        warnings = list(job.warnings)
        options = dataclasses.replace(self.settings.engine_options(), engine=self.engine.name)
        config = options.config(
            image=folder / job.image,
            audio=folder / job.audio,
            prompt=job.prompt,
            save_file=folder / VIDEO,
            overwrite=True,
            resume=job.resume,
            skip_checks=True,  # checked at submission
            **job.options,
        )
        hooks = Hooks(
            engine=self.engine,
            on_block=lambda done: self._update(job, frames_done=done.frames_done, growing=str(done.growing)),
            should_stop=lambda: job.cancel_requested or self._stopping,
        )
        scrub = lambda text: " ".join(text.replace(str(folder) + os.sep, "").split())  # noqa: E731  (no machine paths out)
        notify = lambda line: add_once(warnings, scrub(line).replace(pipeline.RESUME_ADVICE, ""))  # noqa: E731
        end: dict = {"growing": None, "finished_at": None}
        try:
            pipeline.run(config, say=lambda _: None, notify=notify, hooks=hooks)
            end.update(status="completed")
        except Stopped:
            if job.cancel_requested:
                end.update(status="cancelled")
            elif self._resumable(job)[0] is None:  # the next start continues it (see recover)
                end.update(status="in_progress")
            else:
                end.update(
                    status="failed",
                    error={"code": "server_stopped", "message": "the server stopped while this video was being made"},
                )
        except UserError as exc:
            end.update(
                status="failed",
                error={"code": "invalid_input", "message": scrub(exc.one_line().removeprefix("error: "))},
            )
        except Exception as exc:  # the engine's or the machine's failure: the job fails, the server goes on
            end.update(
                status="failed", error={"code": "generation_failed", "message": scrub(f"{type(exc).__name__}: {exc}")}
            )
        terminal = end["status"] in TERMINAL
        end.update(
            finished_at=time.time() if terminal else None,
            warnings=warnings,
            partial=terminal and partial_path(config.save_file).exists(),
        )
        self._update(job, **end)
