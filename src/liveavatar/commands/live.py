"""`liveavatar live`: stream speech to a running server's live session in real time; save the video."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

INSTALL_LIVE = "pip install 'liveavatar[live]'"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "live",
        help="stream speech (a file or the microphone) to a running server; save what comes back",
        description="Open a live session on a running `liveavatar serve`, stream the speech in real time "
        "(20 ms chunks) over its WebSocket, and write the video that comes back to an MP4.",
    )
    p.add_argument("--image", type=Path, required=True, help="the portrait (JPG or PNG)")
    p.add_argument(
        "--audio",
        type=Path,
        default=None,
        help="speech to stream in real time (default: the microphone, which needs `pip install sounddevice`)",
    )
    p.add_argument("--url", default="http://127.0.0.1:7860", help="the server (default http://127.0.0.1:7860)")
    p.add_argument("--token", default=None, help="the server's token (default: $LIVEAVATAR_TOKEN)")
    p.add_argument("--prompt", default="", help="the prompt (as generate's --prompt)")
    p.add_argument("--size", default=None, help="the video size, e.g. 512*512 (as generate's --size)")
    p.add_argument("--save_file", type=Path, default=Path("live.mp4"), help="where the video goes (default live.mp4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from liveavatar.errors import UserError

    try:
        import httpx  # noqa: F401
        import websockets  # noqa: F401
    except ImportError:
        raise UserError(
            "live", "the live client's packages (websockets, httpx) are not installed", INSTALL_LIVE
        ) from None
    if args.audio is None:
        try:
            import sounddevice  # noqa: F401
        except (ImportError, OSError):
            raise UserError(
                "--audio",
                "no speech file given and the microphone needs sounddevice",
                "give --audio speech.wav, or `pip install sounddevice`",
            ) from None
    elif not args.audio.is_file():
        raise UserError("--audio", f"{args.audio} does not exist", "give the path of a speech file")
    if not args.image.is_file():
        raise UserError("--image", f"{args.image} does not exist", "give the path of a JPG or PNG portrait")
    if not args.save_file.parent.is_dir():
        raise UserError(
            "--save_file", f"the folder {args.save_file.parent} does not exist", "create it or choose another path"
        )
    import httpx

    from liveavatar.live.client import SessionRefused, stream_file

    token = args.token if args.token is not None else os.environ.get("LIVEAVATAR_TOKEN") or None
    try:
        received = asyncio.run(
            stream_file(
                args.url, args.image, args.audio, args.save_file, prompt=args.prompt, token=token, size=args.size
            )
        )
    except SessionRefused as exc:
        raise UserError(
            "--url",
            f"the server refused the session ({exc.status}): {exc.message}",
            "fix what it names (the token: --token or $LIVEAVATAR_TOKEN)",
        ) from None
    except (OSError, httpx.TransportError) as exc:
        raise UserError(
            "--url", f"cannot reach {args.url} ({exc})", "start `liveavatar serve` there, or give its --url"
        ) from None
    for _, event in received.events:
        if event.get("type") in ("lagging", "error", "frames.dropped"):
            print(f"note: the server said {event}")
    print(f"saved {args.save_file} ({len(received.data) / 1e6:.1f} MB)")
    return 0
