"""The live sessions of a server: create, find, delete, the cap, and closing the abandoned ones.

Transport-neutral: the WebSocket routes and the WebRTC signalling both look runs up here and attach
their own :class:`~liveavatar.live.runner.Viewer`. Ids are made here (never taken from a request).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from liveavatar.live.runner import LiveRun


class SessionsFull(Exception):
    """As many sessions as the cap allows are open (or being opened)."""


def new_session_id() -> str:
    return "sess_" + secrets.token_hex(12)


class SessionRegistry:
    """At most ``max_sessions`` runs; one without a viewer for ``idle_s`` seconds is closed."""

    def __init__(self, max_sessions: int = 4, idle_s: float = 30.0) -> None:
        self.max_sessions, self.idle_s = max_sessions, idle_s
        self._runs: dict[str, LiveRun] = {}
        self._opening = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a place under the cap while a session is being opened (raises SessionsFull)."""
        with self._lock:
            if len(self._runs) + self._opening >= self.max_sessions:
                raise SessionsFull()
            self._opening += 1
        try:
            yield
        finally:
            with self._lock:
                self._opening -= 1

    def open(self, make: Callable[[str], LiveRun]) -> LiveRun:
        """``make(id)`` builds the run (the slow part: the engine's session); registered and started."""
        with self.slot():
            run_id = new_session_id()
            run = make(run_id)
            with self._lock:
                self._runs[run_id] = run
        return run.start()

    def get(self, run_id: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def list(self) -> list[LiveRun]:
        with self._lock:
            return list(self._runs.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def delete(self, run_id: str, reason: str = "deleted") -> bool:
        """Close and forget the run; False when there is none by that id."""
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return False
        run.close(reason)
        return True

    def reap(self) -> list[str]:
        """Close the runs idle (no viewer) longer than ``idle_s``, and those that ended themselves."""
        gone = [r.id for r in self.list() if r.closed or r.idle_for() > self.idle_s]
        for run_id in gone:
            self.delete(run_id, reason="idle_timeout")
        return gone

    def start(self, every_s: float | None = None) -> None:
        """Reap in the background (every ``every_s``, default a tenth of the idle timeout)."""
        period = every_s or min(5.0, max(self.idle_s / 10, 0.05))

        def loop() -> None:
            while not self._stop.wait(period):
                self.reap()

        self._reaper = threading.Thread(target=loop, name="liveavatar-live-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        """Close every run (server shutdown)."""
        self._stop.set()
        for run in self.list():
            self.delete(run.id, reason="server_stopping")
        if self._reaper is not None:
            self._reaper.join(5)
