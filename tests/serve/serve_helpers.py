"""Servers for the tests: each on its own free port of 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np

from liveavatar.engines.preview import PreviewEngine


class GatedEngine(PreviewEngine):
    """The preview engine, holding before block ``hold_at`` until the test opens the gate.

    Frames are the real engine's; only their timing is the test's, so a job can be caught running.
    """

    def __init__(self, hold_at: int | None = None) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.gate = threading.Event()
        self.held = threading.Event()  # set once the engine waits at the gate

    def generate(self, inputs, plan, notify, start_clip=0, memory=None):
        for i, block in enumerate(super().generate(inputs, plan, notify, start_clip, memory)):
            if self.hold_at is not None and i == self.hold_at:
                self.held.set()
                self.gate.wait()
            yield block


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """uvicorn in a thread, serving ``create_app(settings, engine)`` until ``stop()``."""

    def __init__(self, settings, engine=None) -> None:
        import uvicorn

        from liveavatar.serve.app import create_app

        self.app = create_app(settings, engine)
        self.queue = self.app.state.queue
        self._sock = free_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._sock.close()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(every)


def inputs(portrait: Path, speech: Path, **fields) -> dict:
    """Keyword arguments for httpx's post: the two files and the form fields."""
    data = {
        "prompt": "A woman speaks calmly to the camera.",
        "size": "256*256",
        **{k: str(v) for k, v in fields.items()},
    }
    return {
        "files": {"image": (portrait.name, portrait.read_bytes()), "audio": (speech.name, speech.read_bytes())},
        "data": data,
    }


def frames_in(data_or_path) -> int:
    import io

    import av

    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(source) as container:
        return sum(1 for _ in container.decode(video=0))


def noface_image(path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(90, 160, (512, 512, 3), dtype=np.uint8)).save(path)
    return path
