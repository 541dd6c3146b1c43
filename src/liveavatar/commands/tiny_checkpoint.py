"""`liveavatar tiny-checkpoint DIR`: a tiny random release in the real layout, to try the diffusion
engine end to end on any CPU (the output is noise-like: the weights are random)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("tiny-checkpoint", help="write a tiny random checkpoint in the release layout",
                              description=__doc__.split(":", 1)[1].strip())
    p.add_argument("dir", type=Path, help="folder to create (holds Wan2.2-S2V-14B/ and LiveAvatar/)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar.errors import UserError
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    if args.dir.exists() and any(args.dir.iterdir()):
        raise UserError("DIR", f"{args.dir} exists and is not empty", "give a new or empty folder")
    ckpt_dir, lora = write_tiny_checkpoint(args.dir, seed=args.seed)
    print(f"try: liveavatar generate --engine diffusion --ckpt_dir {ckpt_dir} --lora_path_dmd {lora} "
          "--image samples/portrait.png --audio samples/speech.wav --size 384*256")
    print(args.dir)
    return 0
