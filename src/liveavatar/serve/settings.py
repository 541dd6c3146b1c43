"""What `liveavatar serve` was started with (frozen)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from liveavatar.option_groups import EngineOptions


def default_data_dir() -> Path:
    """``$XDG_STATE_HOME/liveavatar/serve`` (``~/.local/state/...``): jobs, inputs, videos."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "liveavatar" / "serve"


@dataclass(frozen=True)
class Limits:
    upload_bytes: int = 50 * 1024 * 1024  # per file
    pixels: int = 4096 * 4096
    audio_s: float = 600.0
    queue: int = 32  # jobs waiting (the running ones not counted)

    @property
    def request_bytes(self) -> int:
        """A whole upload: two files plus the form fields."""
        return 2 * self.upload_bytes + 256 * 1024


@dataclass(frozen=True)
class LiveSettings:
    """Live sessions (``/v1/sessions``): how many at once, and how each is streamed."""

    max_sessions: int = 4  # open at once; more get 429 (each holds an engine session and a pacer thread)
    idle_s: float = 30.0  # a session without a connected client this long is closed
    fragment_frames: int = 2  # video frames per MP4 fragment on the WebSocket (80 ms at 25 fps)
    max_queued_s: float = 2.0  # video waiting for a slow client; beyond it frames are dropped


@dataclass(frozen=True)
class ServeSettings:
    data_dir: Path = field(default_factory=default_data_dir)
    token: str | None = None
    host: str = "127.0.0.1"  # the bound address: one of the names the Host header may carry
    allowed_hosts: tuple[str, ...] = ()  # more names it may carry ("*": any)
    cors_origins: tuple[str, ...] = ()  # other sites' pages allowed to call the API
    limits: Limits = field(default_factory=Limits)
    live: LiveSettings = field(default_factory=LiveSettings)
    keep_s: float = 24 * 3600.0  # finished videos are deleted this long after they finished
    workers: int = 1
    # how the resident engine is built: generate's engine options (config.ENGINE_OPTION)
    options: EngineOptions = field(default_factory=EngineOptions)
    # a shorthand for options.engine (which engine), when given it wins
    engine: str | None = None
    ice_servers: tuple[dict, ...] = ()  # WebRTC: STUN/TURN servers for clients on other networks

    def engine_options(self) -> EngineOptions:
        """The engine options every job of this server shares."""
        return dataclasses.replace(self.options, engine=self.engine) if self.engine else self.options
