"""`liveavatar doctor`: GPUs, memory, versions, peer access, ports, NCCL settings, a 2-worker collective."""

from __future__ import annotations

import argparse
import json

from liveavatar.argtypes import boolean, positive_int

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "info": "info"}


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check this machine for multi-GPU runs and say how to fix what is wrong",
                              description="Check GPUs, free memory against the planned run, driver/CUDA/NCCL versions, "
                                          "peer access, the rendezvous port, NCCL variables and a 2-worker collective. "
                                          "Exit 1 when a check fails.")
    p.add_argument("--num_gpus_dit", type=positive_int, default=4, help="DiT workers of the planned run (default 4)")
    p.add_argument("--sample_steps", type=positive_int, default=4, help="denoising steps of the planned run (default 4)")
    p.add_argument("--size", default="704*384", help='the planned "W*H" (default 704*384)')
    p.add_argument("--infer_frames", type=positive_int, default=48, help="frames per clip of the planned run (default 48)")
    p.add_argument("--fp8", type=boolean, nargs="?", const=True, default=False, help="the planned run uses fp8 weights")
    p.add_argument("--ckpt_dir", default=None, help="read the DiT's shapes from this checkpoint (default: the 14B shapes)")
    p.add_argument("--no_collective", action="store_true", help="skip the 2-worker collective (it starts 2 processes)")
    p.add_argument("--json", action="store_true", help='print one JSON object {"ok": ..., "checks": [...]}')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liveavatar.doctor import Request, as_dict, run_checks
    from liveavatar.sizing import parse_size

    parse_size(args.size)  # a bad size is one error line
    request = Request(args.num_gpus_dit, args.sample_steps, args.size, args.infer_frames, args.fp8, args.ckpt_dir)
    checks = run_checks(request, collective=not args.no_collective)
    report = as_dict(checks)
    if args.json:
        print(json.dumps(report))
    else:
        for c in checks:
            print(f"{MARKS[c.status]} {c.name}: {c.message}" + (f"\n     fix: {c.fix}" if c.fix else ""))
        print("doctor: " + ("no blocking problem found" if report["ok"] else "at least one check failed (FAIL above)"))
    return 0 if report["ok"] else 1
