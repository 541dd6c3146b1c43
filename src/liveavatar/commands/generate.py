"""`liveavatar generate`: upstream's parameters, presets, and a dry run that prints the plan."""

from __future__ import annotations

import argparse
import sys

from liveavatar.options import add_generate_options, config_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="make a talking-avatar video from a portrait, speech and a prompt",
        description="Make a talking-avatar MP4 from a portrait, a speech track and a prompt.",
    )
    add_generate_options(p)
    p.add_argument("--dry_run", action="store_true", help="print what the engine will use as JSON and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar import pipeline
    from liveavatar.engines.diffusion.runtime.ranks import serve_torchrun_rank

    config = config_from_args(args)
    served = serve_torchrun_rank(config)  # under torchrun, a DiT rank that does not decode ends here
    if served is not None:
        return served
    outcome = pipeline.run(
        config,
        say=lambda text: print(text, flush=True),
        notify=lambda text: print(text, file=sys.stderr, flush=True),
        dry_run=args.dry_run,
    )
    if outcome.path is not None:
        print(outcome.path, flush=True)
    return 0
