"""`liveavatar generate`: upstream's parameters, presets, and a dry run that prints the plan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liveavatar.commands.argtypes import any_int, boolean, number, positive_int
from liveavatar.config import ENGINES, PRESETS, GenerateConfig

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="make a talking-avatar video from a portrait, speech and a prompt",
                              description="Make a talking-avatar MP4 from a portrait, a speech track and a prompt.")
    p.add_argument("--prompt", default=None, help="text describing the character, action, scene and style (or @file.txt)")
    p.add_argument("--image", type=Path, required=True, help="reference portrait (JPG or PNG)")
    p.add_argument("--audio", type=Path, required=True, help="driving speech (WAV or MP3)")
    p.add_argument("--size", default=None, help='target area as "W*H" (default 704*384); the output keeps the portrait\'s aspect')
    p.add_argument("--num_clip", type=positive_int, default=None, help="at most this many clips (default: as many as the audio needs)")
    p.add_argument("--infer_frames", type=any_int, default=None, help="video frames per clip, a multiple of 4 (default 48)")
    p.add_argument("--sample_steps", type=any_int, default=None, help="denoising steps, 1-8 (default 4)")
    p.add_argument("--sample_shift", type=number, default=3.0, help="flow-matching time shift (default 3)")
    p.add_argument("--sample_guide_scale", type=number, default=0.0, help="accepted for compatibility; the distilled model uses no guidance")
    p.add_argument("--base_seed", type=any_int, default=420, help="random seed (default 420)")
    p.add_argument("--enable_online_decode", type=boolean, nargs="?", const=True, default=None, help="decode each block as soon as it is denoised (default on)")
    p.add_argument("--offload_model", type=boolean, nargs="?", const=True, default=None, help="text and audio encoders on the GPU only while they encode (default on)")
    p.add_argument("--fp8", type=boolean, nargs="?", const=True, default=False, help="FP8 linear layers (Hopper/Ada GPUs)")
    p.add_argument("--ckpt_dir", type=Path, default=None, help="the Wan2.2-S2V-14B folder (default ckpt/Wan2.2-S2V-14B)")
    p.add_argument("--lora_path_dmd", type=Path, default=None, help="the Live Avatar LoRA file or folder (default ckpt/LiveAvatar)")
    p.add_argument("--num_gpus_dit", type=positive_int, default=1,
                   help="DiT workers, one GPU each, the steps split between them (default 1; see docs/multi-gpu.md)")
    p.add_argument("--enable_vae_parallel", type=boolean, nargs="?", const=True, default=None,
                   help="with --num_gpus_dit > 1: one more worker only decodes (default: when a GPU is left)")
    p.add_argument("--save_file", type=Path, default=None, help="output .mp4 (default output/<date>_<steps>step_<prompt>.mp4)")
    p.add_argument("--engine", choices=ENGINES, default=None, help="default: diffusion when a complete checkpoint is configured, else preview")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="quick, standard or high (explicit flags win)")
    p.add_argument("--transcript", default=None, help="what the speech says (preview engine: exact lip timing by forced alignment)")
    p.add_argument("--skip_checks", action="store_true", help="do not stop on input-check errors")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run of --save_file (same arguments) where it stopped")
    p.add_argument("--dry_run", action="store_true", help="print the resolved plan as JSON and exit")
    p.set_defaults(func=run)


def _prompt_text(value: str | None) -> str:
    from liveavatar.errors import UserError

    if value is None:
        return ""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise UserError("--prompt", f"prompt file not found: {path}", "give @path/to/prompt.txt of an existing file, or the text itself")
        return path.read_text(encoding="utf-8").strip()
    return value.strip()


def run(args: argparse.Namespace) -> int:
    from liveavatar import pipeline
    from liveavatar.engines.diffusion.runtime.ranks import serve_torchrun_rank

    config = GenerateConfig(
        image=args.image,
        audio=args.audio,
        prompt=_prompt_text(args.prompt),
        size=args.size,
        num_clip=args.num_clip,
        infer_frames=args.infer_frames,
        sample_steps=args.sample_steps,
        sample_shift=args.sample_shift,
        sample_guide_scale=args.sample_guide_scale,
        base_seed=args.base_seed,
        enable_online_decode=args.enable_online_decode,
        offload_model=args.offload_model,
        fp8=args.fp8,
        ckpt_dir=args.ckpt_dir,
        lora_path_dmd=args.lora_path_dmd,
        num_gpus_dit=args.num_gpus_dit,
        enable_vae_parallel=args.enable_vae_parallel,
        save_file=args.save_file,
        engine=args.engine,
        preset=args.preset,
        overwrite=args.overwrite,
        transcript=args.transcript,
        skip_checks=args.skip_checks,
        resume=args.resume,
    )
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
