"""SQLite persistence of the jobs: one row per job, the job's JSON in it; written on every change.

Small on purpose: the queue keeps the jobs in memory and calls ``save`` after each change, so a
restart finds every job as it last was (see ``JobQueue.recover``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("liveavatar.serve")


class JobStore:
    """The jobs database of one data folder, held by one server at a time (an exclusive lock on
    ``<path>.lock`` for the store's life; the system drops it when the process dies, even by kill -9)."""

    def __init__(self, path: Path) -> None:
        self._server_lock = _hold_exclusively(path.with_name(path.name + ".lock"))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL)"
        )

    def save(self, job_id: str, seq: int, record: dict) -> None:
        """Strict JSON (no NaN or Infinity): a record that could not be sent back is never stored."""
        text = json.dumps(record, allow_nan=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs (id, seq, record) VALUES (?, ?, ?)", (job_id, seq, text))

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def load(self) -> list[dict]:
        """Every readable record, in submission order; an unreadable row is skipped with a warning
        (one damaged row must not keep the server from listing the others)."""
        with self._lock:
            rows = self._db.execute("SELECT id, record FROM jobs ORDER BY seq").fetchall()
        records = []
        for job_id, text in rows:
            try:
                record = json.loads(text, parse_constant=_refuse_constant)
            except ValueError as exc:
                log.warning("job %s: its stored record cannot be read (%s); skipped", job_id, exc)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                log.warning("job %s: its stored record is not an object; skipped", job_id)
        return records

    def ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM jobs")}

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._server_lock is not None:
            os.close(self._server_lock)
            self._server_lock = None


def _hold_exclusively(path: Path) -> int | None:
    """An open descriptor holding ``path`` locked; UserError naming the other server when it is held."""
    from liveavatar.errors import UserError

    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock (one server per folder is then the user's care)
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        folder = path.parent.parent
        raise UserError(
            "--data_dir",
            f"another liveavatar serve (pid {other}) is using {folder}",
            "stop that server first, or give this one its own --data_dir",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def private_folders(data_dir: Path) -> tuple[Path, Path]:
    """``(jobs, state)``: the server's own private (0700) folders inside ``data_dir``.

    ``data_dir`` may be a shared folder (``/tmp``, a home): it is created 0700 when missing, and its
    rights are never changed. The database of the older layout (``data_dir/jobs.sqlite3``) moves into state/.
    """
    from liveavatar.errors import UserError

    folders = []
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("jobs", "state"):
            folder = data_dir / name
            folder.mkdir(exist_ok=True, mode=0o700)
            info = folder.stat()
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                raise UserError("--data_dir", f"{folder} belongs to another user", "give a --data_dir of your own")
            if info.st_mode & 0o077:  # ours, but opened up since: private again
                os.chmod(folder, 0o700)
            folders.append(folder)
        old = data_dir / "jobs.sqlite3"
        if old.is_file() and not (folders[1] / old.name).exists():
            for suffix in ("-wal", "-shm", ""):  # the database last: it is what marks the move done
                if Path(f"{old}{suffix}").exists():
                    os.replace(f"{old}{suffix}", folders[1] / f"{old.name}{suffix}")
    except OSError as exc:
        raise UserError(
            "--data_dir", f"{data_dir} cannot be used ({exc.strerror})", "give a folder you can write to"
        ) from None
    return folders[0], folders[1]
