"""`liveavatar check`: measure the portrait, speech and prompt against the user guide."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a portrait, speech and prompt against the guide's rules",
        description="Measure any of the three inputs and report what would hurt the video, "
        "with what was measured, what is expected and how to fix it. "
        "Exit 0: no error; 1: at least one error finding.",
    )
    p.add_argument("--image", type=Path, default=None, help="reference portrait (JPG or PNG)")
    p.add_argument("--audio", type=Path, default=None, help="driving speech (WAV or MP3)")
    p.add_argument("--prompt", default=None, help="the prompt text (or @file.txt)")
    p.add_argument("--json", action="store_true", help='print one JSON object {"ok": ..., "findings": [...]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar.checks import has_error, run_checks
    from liveavatar.checks.report import print_human, to_json

    if args.image is None and args.audio is None and args.prompt is None:
        print(
            "error: check needs at least one of --image, --audio, --prompt; see 'liveavatar check --help'",
            file=sys.stderr,
        )
        return 2
    from liveavatar.media.text import prompt_text

    prompt = prompt_text(args.prompt)
    findings = run_checks(args.image, args.audio, prompt)
    if args.json:
        print(to_json(findings))
    else:
        checked = [
            name
            for name, given in (("image", args.image), ("audio", args.audio), ("prompt", prompt))
            if given is not None
        ]
        if args.audio is not None and prompt:
            checked.append("consistency")
        print_human(findings, checked)
    return 1 if has_error(findings) else 0
