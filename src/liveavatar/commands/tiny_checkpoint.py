"""`liveavatar tiny-checkpoint DIR`: a tiny random release in the real layout, to try the diffusion
engine end to end on any CPU (the output is noise-like: the weights are random)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tiny-checkpoint",
        help="write a tiny random checkpoint in the release layout",
        description=__doc__.split(":", 1)[1].strip(),
    )
    p.add_argument("dir", type=Path, help="folder to create (holds Wan2.2-S2V-14B/ and LiveAvatar/)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar.errors import UserError
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    if args.dir.exists() and any(args.dir.iterdir()):
        raise UserError("DIR", f"{args.dir} exists and is not empty", "give a new or empty folder")
    ckpt_dir, lora = write_tiny_checkpoint(args.dir, seed=args.seed)
    print(f"try: {try_command(ckpt_dir, lora)}")
    print(args.dir)
    return 0


def try_command(ckpt_dir: Path, lora: Path) -> str:
    """A command that works from any folder: absolute paths, the bundled samples when this is a checkout."""
    import shlex

    from liveavatar.media.samples import SAMPLES

    image, audio = SAMPLES / "portrait.png", SAMPLES / "speech.wav"
    if not (image.is_file() and audio.is_file()):  # installed without the repository's samples/
        image, audio = Path("PORTRAIT.png"), Path("SPEECH.wav")
    parts = [
        "liveavatar",
        "generate",
        "--engine",
        "diffusion",
        "--ckpt_dir",
        ckpt_dir.resolve(),
        "--lora_path_dmd",
        lora.resolve(),
        "--image",
        image,
        "--audio",
        audio,
        "--size",
        "384*256",
    ]
    return " ".join(shlex.quote(str(p)) for p in parts)
