"""SQLite persistence of the jobs: one row per job, the job's JSON in it; written on every change.

Small on purpose: the queue keeps the jobs in memory and calls ``save`` after each change, so a
restart finds every job as it last was (see ``JobQueue.recover``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("liveavatar.serve")


class JobStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL)")

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

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
