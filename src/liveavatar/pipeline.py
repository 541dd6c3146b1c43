"""inputs -> checks -> plan -> engine -> writer, with progress and an atomic output file.

`prepare` (inputs, checks, plan, memory choice) is shared by the dry run, the real run and the
server; `run` is the only way a video file is made.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from liveavatar import resume
from liveavatar.config import DISTILLED_STEPS, RANDOM_SEED, GenerateConfig, Plan, inert_flag_notes
from liveavatar.engines.base import Engine, Inputs
from liveavatar.errors import UserError
from liveavatar.hooks import BlockDone, Hooks, Stopped
from liveavatar.media.audio import read_audio
from liveavatar.media.image import read_image
from liveavatar.media.output import claim_output, tidy_stale
from liveavatar.media.writer import VideoWriter, keep_as_partial, partial_path
from liveavatar.planning import make_plan
from liveavatar.progress import frame_progress
from liveavatar.sizing import AUDIO_SAMPLE_RATE

if TYPE_CHECKING:  # the planner imports torch: only when a run asks it (prepare)
    from liveavatar.planning.fit import MemoryFit

Say = Callable[[str], None]
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass(frozen=True)
class Prepared:
    """A run made ready: the engine chosen, and (after `prepare`) the inputs read and checked, the
    plan and the memory choice. ``config`` is resolved, with any guide rung the planner took applied."""

    asked: GenerateConfig  # as given: flags the user set are never overridden
    config: GenerateConfig
    engine: str
    why: str  # why this engine (printed by the real run)
    clip_source: str  # the flag that set the clip count (coverage note)
    inputs: Inputs | None = None
    plan: Plan | None = None
    memory: MemoryFit | None = None  # the diffusion engine's; None for the others

    def summary(self) -> dict:
        """The dry run's JSON object: the plan, and the memory choice when there is one."""
        out = self.plan.summary()
        memory = self.memory.summary() if self.memory is not None else None
        if memory is not None:
            out["memory"] = memory
        return out


def choose(config: GenerateConfig, notify: Say) -> Prepared:
    """Resolve the config and choose the engine; say which flags it ignores."""
    from liveavatar.engines.select import choose_engine, engine_device

    asked = config
    clip_source = f"--preset {config.preset}" if config.preset and config.num_clip is None else "--num_clip"
    config = config.resolve()
    engine_name, why = choose_engine(config)
    for note in inert_flag_notes(asked, engine_name, engine_device(engine_name)):
        notify(note)
    if config.sample_guide_scale:
        notify("warning: --sample_guide_scale is ignored: the distilled Live Avatar model samples without guidance")
    if engine_name == "diffusion" and config.sample_steps != DISTILLED_STEPS:
        notify(
            f"note: {config.sample_steps} sampling steps: the Live Avatar LoRA was distilled for {DISTILLED_STEPS} "
            "steps at shift 3; other counts run off the schedule it learned"
        )
    return Prepared(asked, config, engine_name, why, clip_source)


def prepare(config: GenerateConfig | Prepared, notify: Say, checks: bool = True) -> Prepared:
    """inputs -> checks -> plan -> memory: everything before the engine, for the dry run, the real run
    and the server. ``config``: a GenerateConfig, or `choose`'s result (the real run claims its output
    between the two). ``checks``: gate on the input checks (unless the config skips them)."""
    from liveavatar.planning.fit import fit_memory

    chosen = config if isinstance(config, Prepared) else choose(config, notify)
    config = chosen.config
    inputs = read_inputs(config)
    if checks and not config.skip_checks:
        from liveavatar.checks import gate

        gate(inputs, notify)
    plan = make_plan(config, inputs, chosen.engine)
    config, plan, memory = fit_memory(chosen.asked, config, inputs, plan, chosen.engine, notify)
    _note_coverage(chosen.clip_source, inputs, plan, notify)
    return dataclasses.replace(chosen, config=config, inputs=inputs, plan=plan, memory=memory)


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    path: Path | None  # None for a dry run


def default_output_path(config: GenerateConfig, now: float | None = None) -> Path:
    """``output/<date>_<steps>step_<prompt>.mp4``, as upstream names its videos."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    words = re.sub(r"[^A-Za-z0-9]+", "_", config.prompt).strip("_")[:50] or "avatar"
    return Path("output") / f"{stamp}_{config.sample_steps}step_{words}.mp4"


RESUME_ADVICE = "; rerun with --resume to continue"  # the CLI's advice; the server continues such a job itself


def check_output_path(path: Path, overwrite: bool, default_folder: bool = False) -> Path:
    """Refuse an output we could not or should not write (the default folder is made later)."""
    if path.suffix.lower() != ".mp4":
        raise UserError("--save_file", f"{path} does not end in .mp4", "give a file name ending in .mp4")
    folder = path.parent if str(path.parent) else Path(".")
    if default_folder and not folder.exists():
        return path
    if not folder.is_dir():
        raise UserError(
            "--save_file", f"the folder {folder} does not exist", "create it first or choose another folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("--save_file", f"the folder {folder} is not writable", "choose a folder you can write to")
    if path.is_dir():
        raise UserError("--save_file", f"{path} is a folder", "give a file name ending in .mp4")
    if path.exists() and not overwrite and not default_folder:  # a default name moves on to _2, _3...
        raise UserError(
            "--save_file", f"{path} already exists", "pass --overwrite to replace it, or choose another name"
        )
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
    return (
        f"note: {source} renders {plan.duration_s:.1f} s of the {inputs.audio_seconds:.1f} s of audio "
        f"({plan.num_clips} clip{'' if plan.num_clips == 1 else 's'} of {plan.frames_per_clip} frames); pass --num_clip {needed} to render all of it"
    )


def _note_coverage(source: str, inputs: Inputs, plan: Plan, notify: Say) -> None:
    note = coverage_note(source, inputs, plan)
    if note:
        notify(note)


def run(
    config: GenerateConfig,
    say: Say,
    notify: Say,
    dry_run: bool = False,
    progress: bool | None = None,
    hooks: Hooks | None = None,
) -> Outcome:
    """Generate the video the config asks for; return the plan and where the video went.

    ``say`` prints results (stdout); ``notify`` passes on warnings and notes, each a whole line
    that starts with ``warning:`` or ``note:`` (stderr). ``hooks``: see :mod:`liveavatar.hooks`.
    """
    from liveavatar.engines.select import build_engine, require_engine_files

    hooks = hooks or Hooks()
    random_seed = config.base_seed == RANDOM_SEED
    chosen = choose(config, notify)
    config, engine_name = chosen.config, chosen.engine
    if dry_run:
        prepared = prepare(chosen, notify, checks=False)
        say(json.dumps(prepared.summary()))
        return Outcome(plan=prepared.plan, path=None)
    require_engine_files(engine_name, config)
    # with --resume an existing output is not an error: there is nothing left to do
    may_exist = config.overwrite or config.resume
    wanted = check_output_path(
        config.save_file or default_output_path(config), may_exist, default_folder=config.save_file is None
    )
    made_folder = not wanted.parent.exists()
    try:
        wanted.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. the default output/ in a read-only working folder
        raise UserError(
            "--save_file",
            f"the folder {wanted.parent} cannot be created ({exc.strerror})",
            "run from a folder you can write to, or give --save_file in one",
        ) from None
    tidy_stale(wanted.parent, notify)
    claim = claim_output(wanted, may_exist, unique=config.save_file is None)
    try:
        output = claim.path
        resume.refuse_unfinished(config, output, notify)
        prepared = prepare(chosen, notify)
        config, plan = prepared.config, prepared.plan
        start = resume.prepare(config, plan, output, notify)
        if start is None:  # --resume of a finished video
            path = output
        else:
            say(f"engine: {engine_name} ({chosen.why})")
            if random_seed:
                say(f"seed: {plan.seed} (random; pass --base_seed {plan.seed} to repeat this video)")
            engine = hooks.engine if hooks.engine is not None else build_engine(engine_name, config, prepared.memory)
            if engine.name != engine_name:
                raise ValueError(f"the resident engine is {engine.name}, the run needs {engine_name}")
            path = _render(engine, prepared, output, notify, progress, start, hooks)
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


def _render(
    engine: Engine,
    prepared: Prepared,
    output: Path,
    notify: Say,
    progress: bool | None,
    start: resume.RunStart,
    hooks: Hooks = Hooks(),
) -> Path:
    inputs, plan = prepared.inputs, prepared.plan
    point, record = start.point, start.record
    # a new run writes straight into <name>.partial.mp4, so a kill -9 leaves it playable (an older
    # partial that no record can resume is kept under the next free .partial-N name); a resumed run
    # copies the finished part to a new file that replaces the partial once it is on disk
    if point.clips:
        work = resume.resume_work_path(output)
        work.unlink(missing_ok=True)
    else:
        work = partial_path(output)
        if work.exists():
            keep_as_partial(work, output)
    writer = VideoWriter(
        output,
        plan.width,
        plan.height,
        plan.fps,
        inputs.audio_path,
        work_path=work,
        comment=resume.settings_comment(record.settings),
    )
    clip_ends = list(accumulate(plan.clip_frame_counts()))
    clip_of = lambda frames: next((i for i, end in enumerate(clip_ends) if frames <= end), plan.num_clips - 1)  # noqa: E731
    ends = [tuple(e) for e in record.segments if e[0] > point.clips]
    record_file = resume.record_path(output)
    try:
        if point.clips:
            writer.copy_finished(point.source, [f for c, f in record.segments if c <= point.clips])
        else:
            resume.write_record(record_file, record)
        blocks = engine.generate(inputs, plan, notify, start_clip=point.clips, memory=prepared.memory)
        with frame_progress(plan.num_frames, plan.num_clips, progress) as advance:
            advance(point.frames, point.clips)
            for n, block in enumerate(blocks):
                if n == 0 and point.clips:
                    resume.check_replay(point.expected_state, engine.resume_states.get(point.clips), notify)
                while len(block):  # split at segment ends (engines yield whole clips or blocks of one)
                    if not ends:
                        raise RuntimeError(f"engine {plan.engine} produced more than {plan.num_frames} frames")
                    part, block = (
                        block[: ends[0][1] - writer.frames_written],
                        block[ends[0][1] - writer.frames_written :],
                    )
                    writer.write(part)
                    advance(len(part), clip_of(writer.frames_written))
                    if writer.frames_written == ends[0][1]:
                        _end_segment(writer, engine, record, record_file, ends.pop(0), output, last=not ends)
                _after_block(
                    hooks,
                    BlockDone(
                        writer.frames_written,
                        plan.num_frames,
                        clip_of(writer.frames_written),
                        plan.num_clips,
                        writer.growing_path,
                    ),
                )
        if writer.frames_written != plan.num_frames:
            raise RuntimeError(
                f"engine {plan.engine} produced {writer.frames_written} frames, expected {plan.num_frames}"
            )
    except BaseException as exc:
        if record.clips_done == 0:
            resume.remove_record(record_file)  # nothing worth resuming
        if writer.frames_written < point.frames:  # stopped while copying: the old partial stays
            writer.discard()
            raise
        done = writer.frames_written
        kept = writer.abort()
        where = f"what was finished is in {kept}" if kept is not None else "no frame was finished"
        if kept is not None and record.clips_done:
            where += RESUME_ADVICE
        if getattr(exc, "errno", None) in _DISK_FULL:
            raise UserError(
                "--save_file",
                f"the disk holding {output.parent} is full ({exc.strerror}) after {done} of {plan.num_frames} frames",
                f"free some space and run again; {where}",
            ) from None
        if done or not isinstance(exc, UserError):  # a bad input found before the first frame is its one error line
            notify(f"warning: stopped after {done} of {plan.num_frames} frames; {where}")
        raise
    path = writer.finish()
    # a resumed run that finished within its first new segment never replaced the old partial
    partial_path(output).unlink(missing_ok=True)
    resume.remove_record(record_file)
    return path


def _end_segment(
    writer: VideoWriter,
    engine: Engine,
    record: resume.ResumeRecord,
    record_file: Path,
    end: tuple[int, int],
    output: Path,
    last: bool,
) -> None:
    """Close the writer's segment and, unless the video is complete, record that it is finished."""
    writer.end_segment()
    if last:
        return
    clips, frames = end
    resume.fsync_path(writer.growing_path)
    if writer.growing_path != partial_path(output):  # a resumed run: its file now holds a new segment
        writer.move_work(partial_path(output))
    record.finish_segment(clips, frames, engine.resume_states.get(clips))
    resume.write_record(record_file, record)


def _after_block(hooks: Hooks, done: BlockDone) -> None:
    """Report the block; stop (keeping the partial) if asked to, unless the video is complete."""
    if hooks.on_block is not None:
        hooks.on_block(done)
    if hooks.should_stop is not None and done.frames_done < done.frames_total and hooks.should_stop():
        raise Stopped(f"stopped on request after {done.frames_done} of {done.frames_total} frames")
