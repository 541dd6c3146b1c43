"""`liveavatar prepare`: write fixed copies of the portrait and the speech into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="write fixed copies of the inputs (16 kHz WAV, level, denoise, crop, upscale)",
        description="Write fixed copies of the portrait and/or speech into --out (originals are never "
        "touched) and print what changed, with measurements before and after.",
    )
    p.add_argument("--image", type=Path, default=None, help="reference portrait")
    p.add_argument("--audio", type=Path, default=None, help="driving speech")
    p.add_argument("--out", type=Path, required=True, help="folder for the fixed copies (created if missing)")
    p.add_argument(
        "--denoise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="neural denoising with RNNoise (default: on when the noise floor is above -30 dBFS)",
    )
    p.add_argument(
        "--upscale",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="enlarge with Real-ESRGAN x4plus, or Lanczos without the [enhance] extra (default: on when the image or face is small)",
    )
    p.add_argument("--shorten_pauses", action="store_true", help="cut pauses longer than 1 s down to 0.4 s")
    p.add_argument("--size", default=None, help='crop to the aspect of "W*H" (default: keep the portrait\'s aspect)')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar.errors import UserError
    from liveavatar.prepare import prepare_audio, prepare_image
    from liveavatar.sizing import parse_size

    if args.image is None and args.audio is None:
        raise UserError("--image/--audio", "nothing to prepare", "give --image, --audio or both")
    size = parse_size(args.size) if args.size else None
    if args.out.exists() and not args.out.is_dir():
        raise UserError("--out", f"{args.out} exists and is not a folder", "give a folder path")
    # everything is made in a staging folder beside --out and moved in only when all succeeded,
    # so a bad input never leaves half the outputs behind
    import os
    import shutil
    import tempfile

    if args.out.is_dir() and not os.access(args.out, os.W_OK | os.X_OK):
        raise UserError("--out", f"the folder {args.out} is not writable", "choose a folder you can write to")
    parent = args.out.resolve().parent
    if not parent.is_dir():
        raise UserError("--out", f"the folder {parent} does not exist", "create it first or choose another --out")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=parent))
    except OSError as exc:
        raise UserError(
            "--out", f"cannot write in the folder {parent} ({exc.strerror})", "choose a folder you can write to"
        ) from None
    reports = []
    try:
        if args.image is not None:
            reports.append(("image", args.image, *prepare_image(args.image, staging, args.upscale, size)))
        if args.audio is not None:
            reports.append(
                ("audio", args.audio, *prepare_audio(args.audio, staging, args.denoise, args.shorten_pauses))
            )
        try:
            args.out.mkdir(exist_ok=True)
        except OSError as exc:
            raise UserError(
                "--out", f"cannot create {args.out} ({exc.strerror})", "choose a folder you can write to"
            ) from None
        for kind, source, made, changes in reports:
            final = args.out / made.name
            if final.resolve() == Path(source).resolve():  # never overwrite an original
                final = final.with_name(f"{final.stem}.prepared{final.suffix}")
            try:
                os.replace(made, final)
            except OSError as exc:
                raise UserError(
                    "--out", f"cannot write {final} ({exc.strerror})", "choose a folder you can write to"
                ) from None
            print(f"{kind}: {source} -> {final}")
            for line in changes:
                print(f"  {line}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return 0
