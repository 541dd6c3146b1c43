"""inputs -> checks -> engine -> writer, with progress and an atomic output file."""

from __future__ import annotations

import errno
import json
import os
import re
from itertools import accumulate
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from liveavatar.config import DISTILLED_STEPS, RANDOM_SEED, GenerateConfig, Plan, inert_flag_notes
from liveavatar.engines.base import Inputs
from liveavatar.errors import UserError
from liveavatar.hooks import BlockDone, Hooks, Stopped
from liveavatar.media.audio import read_audio
from liveavatar.media.image import read_image
from liveavatar.media.output import claim_output, tidy_stale
from liveavatar.media.writer import VideoWriter
from liveavatar.planning import make_plan
from liveavatar.progress import frame_progress
from liveavatar.sizing import AUDIO_SAMPLE_RATE

Say = Callable[[str], None]
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    path: Path | None  # None for a dry run


def default_output_path(config: GenerateConfig, now: float | None = None) -> Path:
    """``output/<date>_<steps>step_<prompt>.mp4``, as upstream names its videos."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    words = re.sub(r"[^A-Za-z0-9]+", "_", config.prompt).strip("_")[:50] or "avatar"
    return Path("output") / f"{stamp}_{config.sample_steps}step_{words}.mp4"


def check_output_path(path: Path, overwrite: bool, default_folder: bool = False) -> Path:
    """Refuse an output we could not or should not write (the default folder is made later)."""
    if path.suffix.lower() != ".mp4":
        raise UserError("--save_file", f"{path} does not end in .mp4", "give a file name ending in .mp4")
    folder = path.parent if str(path.parent) else Path(".")
    if default_folder and not folder.exists():
        return path
    if not folder.is_dir():
        raise UserError("--save_file", f"the folder {folder} does not exist", "create it first or choose another folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("--save_file", f"the folder {folder} is not writable", "choose a folder you can write to")
    if path.is_dir():
        raise UserError("--save_file", f"{path} is a folder", "give a file name ending in .mp4")
    if path.exists() and not overwrite and not default_folder:  # a default name moves on to _2, _3...
        raise UserError("--save_file", f"{path} already exists", "pass --overwrite to replace it, or choose another name")
    return path


def read_inputs(config: GenerateConfig) -> Inputs:
    """Decode the portrait and the speech, once: the checks, the plan and the engine share them."""
    image = read_image(config.image)
    audio = read_audio(config.audio)
    return Inputs(
        prompt=config.prompt,
        image=image,
        audio=audio,
        sample_rate=AUDIO_SAMPLE_RATE,
        image_path=config.image,
        audio_path=config.audio,
        transcript=config.transcript,
    )


def coverage_note(source: str, inputs: Inputs, plan: Plan) -> str | None:
    """One line when the clip count (e.g. a preset's) renders less than all of the audio."""
    from liveavatar.sizing import audio_clip_count

    if plan.num_frames >= int(inputs.audio_seconds * plan.fps - 1e-6):
        return None
    needed = audio_clip_count(len(inputs.audio), plan.frames_per_clip, inputs.sample_rate)
    return (f"note: {source} renders {plan.duration_s:.1f} s of the {inputs.audio_seconds:.1f} s of audio "
            f"({plan.num_clips} clip{'' if plan.num_clips == 1 else 's'} of {plan.frames_per_clip} frames); pass --num_clip {needed} to render all of it")


def _note_coverage(source: str, inputs: Inputs, plan: Plan, notify: Say) -> None:
    note = coverage_note(source, inputs, plan)
    if note:
        notify(note)


def run(config: GenerateConfig, say: Say, notify: Say, dry_run: bool = False, progress: bool | None = None,
        hooks: Hooks | None = None) -> Outcome:
    """Generate the video the config asks for; return the plan and where the video went.

    ``say`` prints results (stdout); ``notify`` passes on warnings and notes, each a whole line
    that starts with ``warning:`` or ``note:`` (stderr). ``hooks``: see :mod:`liveavatar.hooks`.
    """
    from liveavatar.engines.select import build_engine, choose_engine, engine_device, require_engine_files

    hooks = hooks or Hooks()
    asked = config
    random_seed = config.base_seed == RANDOM_SEED
    clip_source = f"--preset {config.preset}" if config.preset and config.num_clip is None else "--num_clip"
    config = config.resolve()
    engine_name, why = choose_engine(config)
    for note in inert_flag_notes(asked, engine_name, engine_device(engine_name)):
        notify(note)
    if config.sample_guide_scale:
        notify("warning: --sample_guide_scale is ignored: the distilled Live Avatar model samples without guidance")
    if engine_name == "diffusion" and config.sample_steps != DISTILLED_STEPS:
        notify(f"note: {config.sample_steps} sampling steps: the Live Avatar LoRA was distilled for {DISTILLED_STEPS} "
               "steps at shift 3; other counts run off the schedule it learned")
    if dry_run:
        inputs = read_inputs(config)
        plan = make_plan(config, inputs, engine_name)
        _note_coverage(clip_source, inputs, plan, notify)
        say(json.dumps(plan.summary()))
        return Outcome(plan=plan, path=None)
    require_engine_files(engine_name, config)
    wanted = check_output_path(config.save_file or default_output_path(config), config.overwrite, default_folder=config.save_file is None)
    made_folder = not wanted.parent.exists()
    wanted.parent.mkdir(parents=True, exist_ok=True)
    tidy_stale(wanted.parent, notify)
    claim = claim_output(wanted, config.overwrite, unique=config.save_file is None)
    try:
        inputs = read_inputs(config)
        if not config.skip_checks:
            from liveavatar.checks import gate

            gate(inputs, notify)
        plan = make_plan(config, inputs, engine_name)
        _note_coverage(clip_source, inputs, plan, notify)
        say(f"engine: {engine_name} ({why})")
        if random_seed:
            say(f"seed: {plan.seed} (random; pass --base_seed {plan.seed} to repeat this video)")
        engine = hooks.engine if hooks.engine is not None else build_engine(engine_name, config)
        if engine.name != engine_name:
            raise ValueError(f"the resident engine is {engine.name}, the run needs {engine_name}")
        path = _render(engine, inputs, plan, claim.path, notify, progress, hooks)
    except BaseException:
        claim.release()
        if made_folder:
            _remove_if_empty(wanted.parent)
        raise
    claim.release()
    return Outcome(plan=plan, path=path)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _render(engine, inputs: Inputs, plan: Plan, output: Path, notify: Say, progress: bool | None, hooks: Hooks = Hooks()) -> Path:
    writer = VideoWriter(output, plan.width, plan.height, plan.fps, inputs.audio_path)
    clip_ends = list(accumulate(plan.clip_frame_counts()))
    try:
        with frame_progress(plan.num_frames, plan.num_clips, progress) as advance:
            for block in engine.generate(inputs, plan, notify):
                writer.write(block)
                clip = next((i for i, end in enumerate(clip_ends) if writer.frames_written <= end), plan.num_clips - 1)
                advance(len(block), clip)
                _after_block(hooks, BlockDone(writer.frames_written, plan.num_frames, clip, plan.num_clips, writer.growing_path))
        if writer.frames_written != plan.num_frames:
            raise RuntimeError(f"engine {plan.engine} produced {writer.frames_written} frames, expected {plan.num_frames}")
        return writer.finish()
    except BaseException as exc:
        done = writer.frames_written
        kept = writer.abort()
        where = f"what was finished is in {kept}" if kept is not None else "no frame was finished"
        if getattr(exc, "errno", None) in _DISK_FULL:
            raise UserError("--save_file", f"the disk holding {output.parent} is full ({exc.strerror}) after {done} of {plan.num_frames} frames",
                            f"free some space and run again; {where}") from None
        notify(f"warning: stopped after {done} of {plan.num_frames} frames; {where}")
        raise


def _after_block(hooks: Hooks, done: BlockDone) -> None:
    """Report the block; stop (keeping the partial) if asked to, unless the video is complete."""
    if hooks.on_block is not None:
        hooks.on_block(done)
    if hooks.should_stop is not None and done.frames_done < done.frames_total and hooks.should_stop():
        raise Stopped(f"stopped on request after {done.frames_done} of {done.frames_total} frames")
