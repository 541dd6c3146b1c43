"""One job of the server's queue: its record (what the API shows and SQLite keeps) and its id."""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass, field, fields

TERMINAL = frozenset({"completed", "failed", "cancelled"})
VIDEO = "video.mp4"


class QueueFull(Exception):
    pass


@dataclass
class Job:
    id: str
    seq: int
    created_at: float
    prompt: str
    image: str  # file names inside the job's folder
    audio: str
    options: dict  # GenerateConfig fields given in the request, already validated
    plan: dict  # Plan.summary() at submission
    warnings: list[str] = field(default_factory=list)
    status: str = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    frames_done: int = 0
    error: dict | None = None
    growing: str | None = None  # the file being written while in progress
    partial: bool = False  # a partial video was kept (failed or cancelled part-way)
    resume: bool = False  # continue from the resume record in the job's folder (set on a restart)
    resumed_from: int = 0  # frames already made when it was re-queued (for the ETA)
    # not persisted
    version: int = 0
    cancel_requested: bool = False

    def record(self) -> dict:
        out = asdict(self)
        del out["version"], out["cancel_requested"]
        return out

    @classmethod
    def from_record(cls, record: dict) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def view(self, keep_s: float, queue_position: int | None, now: float | None = None) -> dict:
        """The API object (OpenAI Videos' fields where they fit, then ours)."""
        now = time.time() if now is None else now
        plan = self.plan  # read with .get: a record written by an older version may lack a field
        total = int(plan.get("num_frames") or 0)
        done = total if self.status == "completed" else self.frames_done
        eta = None
        made = done - self.resumed_from  # by this run (a resumed run copies the finished frames first)
        if self.status == "in_progress" and self.started_at is not None and 0 < made and done < total:
            eta = round((now - self.started_at) * (total - done) / made, 1)
        return {
            "id": self.id,
            "object": "video",
            "model": f"liveavatar-{plan.get('engine', 'unknown')}",
            "status": self.status,
            "progress": int(100 * done / total) if total else 0,
            "created_at": int(self.created_at),
            "started_at": _int(self.started_at),
            "completed_at": _int(self.finished_at),
            "expires_at": _int(self.finished_at + keep_s) if self.finished_at is not None else None,
            "size": f"{plan['width']}x{plan['height']}" if "width" in plan and "height" in plan else None,
            "seconds": f"{plan['duration_s']:g}" if "duration_s" in plan else None,
            "prompt": self.prompt,
            "frames_done": done,
            "frames_total": total,
            "eta_s": eta,
            "queue_position": queue_position,
            "partial": self.partial,
            "error": self.error,
            "warnings": self.warnings,
            "options": self.options,
        }


def sound_job(record: dict, keep_s: float) -> Job | None:
    """The job of a stored record when it makes a valid API object (strict JSON), else None with a
    logged warning: a damaged row is left out instead of breaking every listing."""
    try:
        job = Job.from_record(record)
        json.dumps(job.view(keep_s, None), allow_nan=False)
    except Exception as exc:
        logging.getLogger("liveavatar.serve").warning(
            "job %s: its stored record is damaged (%s: %s); left out", record.get("id", "?"), type(exc).__name__, exc
        )
        return None
    return job


def add_once(lines: list[str], line: str) -> None:
    """A job's run repeats the notes its submission's plan already gave: each is shown once."""
    if line not in lines:
        lines.append(line)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def new_job_id() -> str:
    return "video_" + secrets.token_hex(12)
