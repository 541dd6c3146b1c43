"""`liveavatar doctor`: GPUs, memory, versions, peer access, ports, NCCL settings, a 2-worker collective."""

from __future__ import annotations

import argparse
import json

from liveavatar.config import DOCTOR
from liveavatar.option_groups import doctor_defaults, in_group
from liveavatar.options import add_generate_options

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "info": "info"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check this machine for multi-GPU runs and say how to fix what is wrong",
        description="Check GPUs, free memory against the planned run, driver/CUDA/NCCL versions, "
        "peer access, the rendezvous port, NCCL variables and a 2-worker collective. "
        "Exit 1 when a check fails.",
    )
    # the planned run: generate's own flags (names, types, help), with doctor's defaults
    add_generate_options(p, only=in_group(DOCTOR), defaults=doctor_defaults())
    p.add_argument("--no_collective", action="store_true", help="skip the 2-worker collective (it starts 2 processes)")
    p.add_argument("--json", action="store_true", help='print one JSON object {"ok": ..., "checks": [...]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar.config import check_value
    from liveavatar.doctor import Request, as_dict, run_checks

    planned = {name: getattr(args, name) for name in in_group(DOCTOR)}
    for name, value in planned.items():
        check_value(name, value)  # what generate refuses is one error line here too
    request = Request(**planned)
    checks = run_checks(request, collective=not args.no_collective)
    report = as_dict(checks)
    if args.json:
        print(json.dumps(report))
    else:
        for c in checks:
            print(f"{MARKS[c.status]} {c.name}: {c.message}" + (f"\n     fix: {c.fix}" if c.fix else ""))
        print("doctor: " + ("no blocking problem found" if report["ok"] else "at least one check failed (FAIL above)"))
    return 0 if report["ok"] else 1
