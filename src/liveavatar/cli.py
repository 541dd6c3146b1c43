"""The `liveavatar` command: parse flags, run a subcommand, turn UserError into one line and exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from liveavatar import __version__
from liveavatar.errors import UserError

# Subcommand modules under liveavatar.commands; each has register(subparsers) and a run(args) -> int.
COMMANDS = ("generate", "check", "prepare", "serve", "live", "tiny-checkpoint", "doctor")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error:` line on stderr (exit 2), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="liveavatar", description="Streaming, audio-driven talking-avatar video generation.")
    parser.add_argument("--version", action="version", version=f"liveavatar {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for failures")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        importlib.import_module(f"liveavatar.commands.{name.replace('-', '_')}").register(subparsers)
    for sub in subparsers.choices.values():  # `liveavatar generate ... --debug` works too
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for failures")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors, --help and --version end here; return, don't exit
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    from liveavatar.interrupts import describe, exit_code, signals_as_interrupts

    try:
        with signals_as_interrupts():
            return args.func(args)
    except UserError as exc:
        if args.debug:
            traceback.print_exc()
        print(exc.one_line(), file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return exit_code(exc)
    except Exception as exc:  # anything else is our bug or the machine's (e.g. out of memory)
        if args.debug:
            traceback.print_exc()
        detail = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"error: {args.command} failed: {type(exc).__name__}: {detail} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
