"""`liveavatar serve`: the engine loaded once, an HTTP API with a job queue, a web UI, live video."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from liveavatar.argtypes import number, positive_int
from liveavatar.config import ENGINE_OPTION
from liveavatar.option_groups import in_group
from liveavatar.options import add_generate_options

INSTALL_SERVE = "pip install 'liveavatar[serve]'"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="keep the engine loaded and serve an HTTP API and a web UI",
        description="Load the engine once and serve jobs from a bounded queue: a web UI at / and an "
        "HTTP API at /v1/videos (shaped like OpenAI's Videos API), with live video while it is made.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--token",
        default=None,
        help="the token every request needs (default: $LIVEAVATAR_TOKEN, else a random one, "
        "printed in the URL to open)",
    )
    p.add_argument(
        "--no_token",
        action="store_true",
        help="no token (only with a loopback --host: anyone on this machine can use the server)",
    )
    p.add_argument(
        "--allowed_hosts",
        default="",
        metavar="NAMES",
        help="comma-separated host names the server also answers to besides localhost, 127.0.0.1, [::1] and --host ('*': any)",
    )
    p.add_argument(
        "--cors_origins",
        default="",
        metavar="ORIGINS",
        help="comma-separated origins (e.g. https://app.example) whose pages may call the API",
    )
    p.add_argument(
        "--data_dir",
        type=Path,
        default=None,
        help="jobs database, inputs and videos (default ~/.local/state/liveavatar/serve)",
    )
    p.add_argument(
        "--keep_hours",
        type=number,
        default=24.0,
        help="delete finished videos this long after they finish (default 24)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="jobs at a time (default 1; more only with the preview engine)"
    )
    p.add_argument(
        "--max_sessions", type=positive_int, default=4, help="live sessions open at once; more get 429 (default 4)"
    )
    p.add_argument(
        "--session_idle_s",
        type=number,
        default=30.0,
        help="close a live session this long without a client (default 30)",
    )
    p.add_argument("--max_queue", type=positive_int, default=32, help="videos that may wait; more get 429 (default 32)")
    p.add_argument("--max_upload_mb", type=number, default=50.0, help="largest image or audio file in MB (default 50)")
    p.add_argument(
        "--max_pixels", type=positive_int, default=4096 * 4096, help="largest portrait in pixels (default 4096*4096)"
    )
    p.add_argument("--max_audio_s", type=number, default=600.0, help="longest speech in seconds (default 600)")
    p.add_argument(
        "--ice_servers",
        default="",
        metavar="JSON",
        help="live sessions over WebRTC from other networks: STUN/TURN servers as the browser's RTCPeerConnection takes them, "
        'e.g. \'[{"urls": "turn:turn.example:3478", "username": "u", "credential": "p"}]\' (default: none, enough on localhost)',
    )
    # the engine's own settings are generate's flags (same names, types, defaults and help)
    add_generate_options(p, only=in_group(ENGINE_OPTION))
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    from liveavatar.errors import UserError
    from liveavatar.option_groups import EngineOptions
    from liveavatar.serve.settings import Limits, LiveSettings, ServeSettings, default_data_dir

    for flag in ("keep_hours", "max_upload_mb", "max_audio_s"):
        if getattr(args, flag) <= 0:
            raise UserError(f"--{flag}", f"{getattr(args, flag):g} is not positive", "give a positive number")
    return ServeSettings(
        data_dir=args.data_dir or default_data_dir(),
        token=choose_token(args),
        keep_s=args.keep_hours * 3600,
        workers=args.workers,
        host=args.host,
        allowed_hosts=_names(args.allowed_hosts),
        cors_origins=_names(args.cors_origins),
        limits=Limits(
            upload_bytes=int(args.max_upload_mb * 1024 * 1024),
            pixels=args.max_pixels,
            audio_s=args.max_audio_s,
            queue=args.max_queue,
        ),
        options=EngineOptions.of(args),
        live=LiveSettings(max_sessions=args.max_sessions, idle_s=max(args.session_idle_s, 0.1)),
        ice_servers=_ice_servers(args.ice_servers),
    )


def _ice_servers(text: str) -> tuple[dict, ...]:
    from liveavatar.errors import UserError
    from liveavatar.live.webrtc import parse_ice_servers

    if not text.strip():
        return ()
    try:
        return parse_ice_servers(text)
    except ValueError as exc:
        raise UserError(
            "--ice_servers", str(exc), 'give a JSON list such as [{"urls": "stun:stun.example:3478"}]'
        ) from None


def choose_token(args: argparse.Namespace) -> str | None:
    """--token, else $LIVEAVATAR_TOKEN, else a random one; None only for --no_token on a loopback address."""
    import secrets

    from liveavatar.errors import UserError

    if args.no_token:
        if args.token:
            raise UserError("--no_token", "given with --token", "give one of them")
        if not _loopback(args.host):
            raise UserError(
                "--no_token",
                f"--host {args.host} is reachable from other machines",
                "keep the token (the default), or serve on --host 127.0.0.1",
            )
        return None
    token = args.token if args.token is not None else os.environ.get("LIVEAVATAR_TOKEN")
    return token or secrets.token_urlsafe(24)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def open_url(host: str, port: int, token: str | None) -> str:
    """The URL to open: the page keeps the token it carries (Jupyter's way)."""
    from urllib.parse import quote

    shown = (
        "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
    )
    return f"http://{shown}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from liveavatar.errors import UserError

    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart: FastAPI's form parser)
        import uvicorn
    except ImportError:
        raise UserError(
            "serve", "the server's packages (fastapi, uvicorn, python-multipart) are not installed", INSTALL_SERVE
        ) from None
    from liveavatar.serve.app import create_app, resolve_engine_name

    settings = settings_from_args(args)
    engine = resolve_engine_name(settings)
    if settings.workers > 1 and engine != "preview":
        raise UserError(
            "--workers",
            f"{settings.workers} workers with the {engine} engine",
            "use --workers 1: one GPU runs one job at a time",
        )
    app = create_app(settings)  # takes the data folder (refused when another server has it)
    try:
        sock = listening_socket(args.host, args.port)  # before saying where to connect: a port in use is one line
    except UserError:
        app.state.queue.stop(0)  # lets the data folder go
        raise
    print(
        f"liveavatar serve: engine {engine}, data in {settings.data_dir}; open {open_url(args.host, args.port, settings.token)}",
        flush=True,
    )
    uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
    return 0


def listening_socket(host: str, port: int):
    """The server's socket, bound; UserError naming --port or --host when it cannot be."""
    import errno
    import socket

    from liveavatar.errors import UserError

    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it
        # each response waits ~40 ms for the client's delayed ACK (Nagle)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        return sock
    except socket.gaierror:
        raise UserError(
            "--host", f"{host!r} is not an address of this machine", "give an address such as 127.0.0.1 or 0.0.0.0"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                "--port",
                f"port {port} on {host} is already in use (another server?)",
                "stop what uses it, or give another --port",
            ) from None
        raise UserError(
            "--host",
            f"cannot listen on {host}:{port} ({exc.strerror})",
            "give an address of this machine and a free --port",
        ) from None
