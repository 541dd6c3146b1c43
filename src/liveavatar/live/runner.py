"""One live session on a server: its LiveSession driven in real time, and the viewer attached to it.

The timeline runs at the session's fps from the moment the session is opened, whether or not a
client is connected or speaks: a pacer thread asks the session for its next block when that block
is due on the wall clock (``next_block`` never waits), hands it to the attached viewer (a
:class:`Viewer`: the WebSocket's muxer, a WebRTC track, ...) and forwards the session's events.
Audio and controls are passed to the session as they come (it is safe to call from another thread).

A transport attaches one viewer at a time; a new one (a reconnect after a dropped socket) replaces
the old, and the timeline simply continues. While no viewer is attached the run counts as idle, and
the registry closes it after its idle timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import numpy as np

from liveavatar.engines.base import LiveBlock, LiveSession


class Viewer(Protocol):
    """Where a run's output goes. Both calls come from the pacer thread and must not block."""

    def block(self, block: LiveBlock) -> None: ...

    def event(self, event: dict) -> None: ...

    def ended(self, reason: str) -> None:
        """The run stopped (closed, reaped) or another viewer replaced this one."""
        ...


class LiveRun:
    """``session`` paced in real time on its own thread; ``info``: the API object's fixed fields."""

    def __init__(self, run_id: str, session: LiveSession, info: dict, notes: list[str] | None = None) -> None:
        self.id = run_id
        self.session = session
        self.info = info
        self.notes = list(notes or [])
        self.created_at = time.time()
        self.state = "listening"  # listening | speaking | closed
        self.frames_shown = 0
        self.lagging: dict | None = None  # the last lagging event while behind, else None
        self._viewer: Viewer | None = None
        self._idle_since: float | None = time.monotonic()  # no viewer since then
        self._lock = threading.Lock()
        self._stop = threading.Event()
        first = session.poll_events()
        self._started_event = next((e for e in first if e.get("type") == "session.started"), {})
        for event in first:  # e.g. the engine is known to be slower than real time here: said from the start
            if event.get("type") == "lagging":
                self.lagging = None if event.get("recovered") else event
        self._thread = threading.Thread(target=self._pace, name=f"liveavatar-live-{run_id[-6:]}", daemon=True)

    # --- the transport's side ---------------------------------------------------------------
    def start(self) -> LiveRun:
        self._thread.start()
        return self

    def attach(self, viewer: Viewer) -> None:
        """Make ``viewer`` the one that receives blocks and events (replacing any other)."""
        with self._lock:  # the next block this viewer gets starts at frames_shown (see _deliver)
            old, self._viewer, self._idle_since = self._viewer, viewer, None
            timeline_s = self.frames_shown / self.session.fps
        if old is not None:
            old.ended("replaced")
        # timeline_s: where this viewer's file starts on the session's timeline (speech.started's at_s is on it)
        viewer.event({**self._started_event, "type": "session.started", **self.view(), "timeline_s": timeline_s})
        if self.lagging is not None:  # said before this viewer came (e.g. at the start): said again
            viewer.event(self.lagging)

    def detach(self, viewer: Viewer) -> None:
        with self._lock:
            if self._viewer is viewer:
                self._viewer, self._idle_since = None, time.monotonic()

    def idle_for(self, now: float | None = None) -> float:
        """Seconds without a viewer (0 while one is attached)."""
        since = self._idle_since
        return 0.0 if since is None else (time.monotonic() if now is None else now) - since

    def push_audio(self, pcm: np.ndarray) -> None:
        self.session.push_audio(pcm)

    def end_of_speech(self) -> None:
        self.session.end_of_speech()

    def clear(self) -> float:
        return self.session.clear()

    def close(self, reason: str = "closed") -> None:
        """Stop the pacer, free the engine's session, tell the viewer. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(10)
        with self._lock:
            viewer, self._viewer = self._viewer, None
            self.state = "closed"
        self.session.close()
        if viewer is not None:
            viewer.ended(reason)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def view(self) -> dict:
        """The API object: ``POST``/``GET /v1/sessions/{id}``."""
        return {
            "id": self.id,
            "object": "session",
            **self.info,
            "state": self.state,
            "created_at": int(self.created_at),
            "connected": self._viewer is not None,
            "seconds_shown": round(self.session.seconds_shown, 3),
            "speech_seconds_played": round(self.session.speech_seconds_played, 3),
            "lagging": self.lagging,
            "notes": self.notes,
        }

    # --- the pacer --------------------------------------------------------------------------
    def _pace(self) -> None:
        fps = self.session.fps
        t0 = time.monotonic()
        made = 0
        try:
            while not self._stop.is_set():
                wait = t0 + made / fps - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                # behind the wall clock (the engine or the machine was too slow for a while): the next
                # blocks are made at once, without waiting, until the timeline is on time again; the
                # speech queued meanwhile drains and the latency returns to what it was
                block = self.session.next_block()
                made += len(block.frames)
                self._deliver(block)
        except Exception as exc:  # the engine failed: the viewer hears why, the server goes on
            self._send_event({"type": "error", "code": "engine_failed", "message": f"{type(exc).__name__}: {exc}"})
            threading.Thread(target=self.close, args=("engine_failed",), daemon=True).start()

    def _deliver(self, block: LiveBlock) -> None:
        self.state = "speaking" if block.speaking else "listening"
        events = self.session.poll_events()
        for event in events:
            if event.get("type") == "lagging":
                self.lagging = None if event.get("recovered") else event
        with self._lock:
            viewer = self._viewer
            self.frames_shown += len(block.frames)
        if viewer is None:
            return
        # events first: speech.started arrives before the fragment that shows it
        for event in events:
            viewer.event(event)
        viewer.block(block)

    def _send_event(self, event: dict) -> None:
        with self._lock:
            viewer = self._viewer
        if viewer is not None:
            viewer.event(event)
