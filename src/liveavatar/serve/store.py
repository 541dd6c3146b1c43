"""SQLite persistence of the jobs: one row per job, the job's JSON in it; written on every change.

Small on purpose: the queue keeps the jobs in memory and calls ``save`` after each change, so a
restart finds every job as it last was (see ``JobQueue.recover``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path


class JobStore:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL)")

    def save(self, job_id: str, seq: int, record: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs (id, seq, record) VALUES (?, ?, ?)", (job_id, seq, json.dumps(record)))

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def load(self) -> list[dict]:
        """Every record, in submission order."""
        with self._lock:
            rows = self._db.execute("SELECT record FROM jobs ORDER BY seq").fetchall()
        return [json.loads(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
