"""`liveavatar serve`: the engine loaded once, an HTTP API with a job queue, a web UI, live video."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from liveavatar.argtypes import number, positive_int
from liveavatar.options import add_generate_options
from liveavatar.config import ENGINE_OPTION, in_group

INSTALL_SERVE = "pip install 'liveavatar[serve]'"


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="keep the engine loaded and serve an HTTP API and a web UI",
                              description="Load the engine once and serve jobs from a bounded queue: a web UI at / and an "
                                          "HTTP API at /v1/videos (shaped like OpenAI's Videos API), with live video while it is made.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on every request (default: $LIVEAVATAR_TOKEN)")
    p.add_argument("--data_dir", type=Path, default=None, help="jobs database, inputs and videos (default ~/.local/state/liveavatar/serve)")
    p.add_argument("--keep_hours", type=number, default=24.0, help="delete finished videos this long after they finish (default 24)")
    p.add_argument("--workers", type=positive_int, default=1, help="jobs at a time (default 1; more only with the preview engine)")
    p.add_argument("--max_queue", type=positive_int, default=32, help="videos that may wait; more get 429 (default 32)")
    p.add_argument("--max_upload_mb", type=number, default=50.0, help="largest image or audio file in MB (default 50)")
    p.add_argument("--max_pixels", type=positive_int, default=4096 * 4096, help="largest portrait in pixels (default 4096*4096)")
    p.add_argument("--max_audio_s", type=number, default=600.0, help="longest speech in seconds (default 600)")
    # the engine's own settings are generate's flags (same names, types, defaults and help)
    add_generate_options(p, only=in_group(ENGINE_OPTION))
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace):
    from liveavatar.config import EngineOptions
    from liveavatar.errors import UserError
    from liveavatar.serve.settings import Limits, ServeSettings, default_data_dir

    if args.keep_hours <= 0 or args.max_upload_mb <= 0 or args.max_audio_s <= 0:
        raise UserError("--keep_hours/--max_upload_mb/--max_audio_s", "a limit is not positive", "give positive numbers")
    token = args.token if args.token is not None else os.environ.get("LIVEAVATAR_TOKEN") or None
    return ServeSettings(
        data_dir=args.data_dir or default_data_dir(), token=token, keep_s=args.keep_hours * 3600, workers=args.workers,
        limits=Limits(upload_bytes=int(args.max_upload_mb * 1024 * 1024), pixels=args.max_pixels, audio_s=args.max_audio_s, queue=args.max_queue),
        options=EngineOptions.of(args),
    )


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
        raise UserError("serve", "the server's packages (fastapi, uvicorn, python-multipart) are not installed", INSTALL_SERVE) from None
    from liveavatar.serve.app import create_app, resolve_engine_name

    settings = settings_from_args(args)
    engine = resolve_engine_name(settings)
    if settings.workers > 1 and engine != "preview":
        raise UserError("--workers", f"{settings.workers} workers with the {engine} engine", "use --workers 1: one GPU runs one job at a time")
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UserError("--data_dir", f"{settings.data_dir} cannot be created ({exc.strerror})", "give a folder you can write to") from None
    if not _loopback(args.host) and not settings.token:
        print(f"warning: --host {args.host} is reachable from other machines and no --token is set: anyone there can use this server",
              file=sys.stderr, flush=True)
    app = create_app(settings)
    print(f"liveavatar serve: engine {engine}, data in {settings.data_dir}; open http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    return 0
