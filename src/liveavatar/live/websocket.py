"""The WebSocket transport of a live session (``WS /v1/sessions/{id}/ws``); see README "Live sessions".

In: **binary** messages of int16 little-endian mono PCM at the session's sample rate; **text** JSON
controls ``{"type": "end_of_speech" | "clear" | "close"}``. Out: **binary** messages that,
concatenated, are one fragmented MP4 (H.264 + AAC, the init segment first; a reconnect starts a new
file, its time 0 at the timeline frame ``session.started`` names); **text** JSON events.

The muxer runs on the session's pacer thread; the bytes wait for the socket in a queue bounded in
video time (``max_queued_s``): a client that reads too slowly loses whole frames (a
``frames.dropped`` event says how many; the video restarts at a key frame), never server memory. A
malformed message is answered with an ``error`` event and the session goes on.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

import numpy as np

from liveavatar.engines.base import LiveBlock
from liveavatar.live.runner import LiveRun

CONTROLS = ("end_of_speech", "clear", "close")
MAX_AUDIO_MESSAGE_S = 10.0  # one binary message carries at most this much speech
_END = object()


class SocketViewer:
    """A :class:`~liveavatar.live.runner.Viewer` that muxes blocks into MP4 bytes for one socket."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, run: LiveRun, fragment_frames: int = 2, max_queued_s: float = 2.0
    ) -> None:
        from liveavatar.media.fragments import FragmentMuxer

        s = run.session
        self.loop = loop
        self.max_frames = max(1, int(max_queued_s * s.fps))
        self.dropped = 0
        self._muxer = FragmentMuxer(s.width, s.height, s.fps, s.sample_rate, fragment_frames)
        self._mux_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._waiting_frames = 0  # frames muxed but not yet sent
        self._unsent = 0  # frames muxed since bytes were last queued (still inside the muxer)
        self._dropping = False
        self.end_reason: str | None = None

    # --- from the pacer thread --------------------------------------------------------------
    def block(self, block: LiveBlock) -> None:
        n = len(block.frames)
        with self._count_lock:
            full = self._waiting_frames + n > self.max_frames
            if not full:
                self._waiting_frames += n
        with self._mux_lock:
            if self.end_reason is not None:
                return
            if full:
                self.dropped += n
                if not self._dropping:
                    self._muxer.skip()
                    self._dropping = True
                return
            data = self._muxer.add(block.frames, block.audio, block.start_frame)
        if self._dropping:
            self._dropping = False
            self.event({"type": "frames.dropped", "frames": self.dropped, "reason": "the client reads too slowly"})
        self._unsent += n
        if data:
            self._put((data, self._unsent))
            self._unsent = 0

    def event(self, event: dict) -> None:
        self._put(json.dumps(event))

    def ended(self, reason: str) -> None:
        with self._mux_lock:
            if self.end_reason is not None:
                return
            self.end_reason = reason
            tail = self._close_muxer()
        if tail:
            self._put((tail, 0))
        self._put(_END)

    def _close_muxer(self) -> bytes:
        try:
            return self._muxer.close()
        except Exception:  # the socket is going away; a broken tail must not stop that
            return b""

    def _put(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down)
            pass

    # --- on the event loop ------------------------------------------------------------------
    async def pump(self, ws) -> str:
        """Send what is queued until the run ends for this viewer; the reason."""
        while True:
            item = await self._queue.get()
            if item is _END:
                return self.end_reason or "closed"
            if isinstance(item, str):
                await ws.send_text(item)
                continue
            data, frames = item
            await ws.send_bytes(data)
            with self._count_lock:
                self._waiting_frames -= frames

    def say_error(self, code: str, message: str) -> None:
        self.event({"type": "error", "code": code, "message": message})

    def discard(self) -> None:
        """The socket is gone: stop muxing (the pacer may still call block() once)."""
        with self._mux_lock:
            if self.end_reason is None:
                self.end_reason = "disconnected"
                self._close_muxer()


def parse_audio(data: bytes, sample_rate: int) -> np.ndarray | str:
    """int16 LE samples, or what is wrong with the message."""
    if len(data) % 2:
        return f"a binary message is int16 little-endian PCM: {len(data)} bytes is not a whole number of samples"
    if len(data) > MAX_AUDIO_MESSAGE_S * sample_rate * 2:
        return f"a binary message carries at most {MAX_AUDIO_MESSAGE_S:g} s of audio; send it in smaller chunks (e.g. 20 ms)"
    return np.frombuffer(data, dtype="<i2")


def parse_control(text: str) -> str | tuple[str, str]:
    """The control's type, or ``(error code, message)``."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return "bad_message", 'a text message must be JSON such as {"type": "end_of_speech"}'
    kind = message.get("type") if isinstance(message, dict) else None
    if kind not in CONTROLS:
        return "unknown_control", f'unknown control {kind!r}: send one of {", ".join(CONTROLS)} as {{"type": ...}}'
    return kind


CLOSE_CODES = {"replaced": 4001, "engine_failed": 1011, "server_stopping": 1001}


async def serve_socket(
    ws, run: LiveRun, close_run: Callable[[], None], fragment_frames: int = 2, max_queued_s: float = 2.0
) -> None:
    """Serve one WebSocket of ``run`` until the client leaves or the run ends for it."""
    await ws.accept()
    viewer = SocketViewer(asyncio.get_running_loop(), run, fragment_frames, max_queued_s)
    run.attach(viewer)
    pump = asyncio.create_task(viewer.pump(ws))
    try:
        while True:
            receive = asyncio.create_task(ws.receive())
            done, _ = await asyncio.wait({receive, pump}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                receive.cancel()
                break
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            if not _handle(message, run, viewer):
                await asyncio.to_thread(close_run)  # joins the pacer: not on the event loop
                await asyncio.wait_for(pump, 10)  # the file's tail, then the end
                break
        reason = pump.result()
        await ws.close(code=CLOSE_CODES.get(reason, 1000), reason=reason)
    except Exception:  # a socket that broke mid-send: the session waits for a reconnect
        return
    finally:
        run.detach(viewer)
        viewer.discard()
        pump.cancel()


def _handle(message: dict, run: LiveRun, viewer: SocketViewer) -> bool:
    """Apply one client message; False when the client asks to close the session."""
    if message.get("bytes") is not None:
        pcm = parse_audio(message["bytes"], run.session.sample_rate)
        if isinstance(pcm, str):
            viewer.say_error("bad_audio", pcm)
        else:
            run.push_audio(pcm)
        return True
    control = parse_control(message.get("text") or "")
    if isinstance(control, tuple):
        viewer.say_error(*control)
    elif control == "end_of_speech":
        run.end_of_speech()
    elif control == "clear":
        run.clear()
    return control != "close"
