"""Resume records: what an interrupted run needs to be continued exactly (`generate --resume`).

Next to the output ``<name>.mp4`` a run keeps ``<name>.resume.json``: the settings that change the
video, hashes of its inputs, the segment boundaries (the writer encodes each segment on its own,
see ``media/writer.py``), how many clips are finished, and a fingerprint of the engine's state at
the last boundaries. It is replaced atomically (write, fsync, rename, fsync the folder), so a crash
leaves either the previous record or the new one; it is removed when the video is complete.

What is NOT in it: the KV caches (tens of GB at 14B) or the decoder's causal state (about 1 GB at
704*384). Both are rebuilt exactly on resume by replaying the finished clips through the DiT and
the decoder (nothing is re-encoded or written): a block's cached K/V depend on every earlier
block, so only a replay from the first block gives the uninterrupted run's caches bit for bit.
The fingerprints let the resumed run check that its replay reached the same state.

Where a run continues is decided by the partial MP4 itself (its whole segments, counted by
``media/continuation.finished_frames``) capped by the record, so a record written just before the
MP4's last fragment reached the disk can never make the video skip frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liveavatar.config import IDENTITY, GenerateConfig, Plan
from liveavatar.errors import UserError
from liveavatar.option_groups import in_group

RECORD_VERSION = 1
# a writer segment (one fresh H.264 encoder, a keyframe at its start) covers whole clips and at
# least this many frames, so tiny clips do not cost a keyframe each
SEGMENT_MIN_FRAMES = 48
# fingerprints kept: the partial MP4 can trail the record by a segment (its last fragment is
# still in the muxer when the record is written), so a few earlier boundaries stay checkable
KEEP_STATES = 4
WRITER_SETTINGS = "h264 crf18 veryfast no-bframes segments"  # bump when the writer's encoding changes


def record_path(output: Path) -> Path:
    return output.with_name(output.stem + ".resume.json")


def resume_work_path(output: Path) -> Path:
    """Where a resumed run writes until its first new segment is safe (then it becomes the partial)."""
    return output.with_name(f".{output.stem}.resume.tmp{output.suffix}")


def segment_ends(plan: Plan) -> list[tuple[int, int]]:
    """``(clips, frames)`` at the end of each writer segment: every few whole clips, and the end."""
    per = max(1, math.ceil(SEGMENT_MIN_FRAMES / plan.frames_per_clip))
    ends, frames = [], 0
    for clip, count in enumerate(plan.clip_frame_counts(), start=1):
        frames += count
        if clip % per == 0 or clip == plan.num_clips:
            ends.append((clip, frames))
    return ends


def sha256_file(path: Path, limit: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:limit]


def sha_text(text: str | None, limit: int = 16) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:limit]


def _checkpoint_identity(config: GenerateConfig) -> str:
    """Names and sizes of the weight files (hashing tens of GB would cost minutes)."""
    from liveavatar.engines.diffusion.loading.layout import resolve_layout

    layout = resolve_layout(config.ckpt_dir, config.lora_path_dmd)
    files = sorted(p for p in layout.root.rglob("*") if p.suffix in (".safetensors", ".pth", ".bin") and p.is_file())
    files.append(layout.lora)
    listing = [(p.name, p.stat().st_size if p.is_file() else None) for p in files]
    return sha_text(json.dumps(listing))


# How an identity option (config.IDENTITY) is recorded where that is not the plan's value of the
# same name (else the config's): the inputs by hash, the resolved values by the plan's name for them.
_RECORDED = {
    "image": lambda config, plan: sha256_file(config.image),
    "audio": lambda config, plan: sha256_file(config.audio),
    "prompt": lambda config, plan: sha_text(plan.prompt),
    "size": lambda config, plan: f"{plan.width}*{plan.height}",
    "infer_frames": lambda config, plan: plan.frames_per_clip,
    "num_clip": lambda config, plan: plan.num_clips,
    "base_seed": lambda config, plan: plan.seed,
    "transcript": lambda config, plan: sha_text(config.transcript),
    # the checkpoint: one entry for both of its flags, by its files, only when the engine reads it
    "ckpt_dir": lambda config, plan: _checkpoint_identity(config) if plan.engine == "diffusion" else None,
}
_SHARED = {"lora_path_dmd": "ckpt_dir"}  # recorded in the entry of the option named
_KEYS = {"ckpt_dir": "--ckpt_dir/--lora_path_dmd"}
_PLAN_FIELDS = frozenset(f.name for f in dataclasses.fields(Plan))


def run_settings(config: GenerateConfig, plan: Plan) -> dict:
    """Every setting that changes the video (the IDENTITY options), keyed by the flag that sets it."""
    settings = {}
    for name in in_group(IDENTITY):
        if name in _SHARED:
            continue
        if name in _RECORDED:
            value = _RECORDED[name](config, plan)
        else:
            value = getattr(plan if name in _PLAN_FIELDS else config, name)
        if name in _KEYS and value is None:
            continue  # a checkpoint the engine does not read
        settings[_KEYS.get(name, f"--{name}")] = value
    settings["writer"] = WRITER_SETTINGS
    return settings


@dataclass
class ResumeRecord:
    settings: dict
    num_clips: int
    num_frames: int
    segments: list  # [[clips, frames], ...] at each segment end
    clips_done: int = 0
    frames_done: int = 0
    states: dict = field(default_factory=dict)  # str(clips) -> the engine's fingerprint there
    version: int = RECORD_VERSION
    updated: float = 0.0

    def finish_segment(self, clips: int, frames: int, state: dict | None) -> None:
        self.clips_done, self.frames_done = clips, frames
        if state is not None:
            self.states[str(clips)] = state
            for old in sorted(self.states, key=int)[:-KEEP_STATES]:
                del self.states[old]


def write_record(path: Path, record: ResumeRecord) -> int:
    """Replace the record atomically and durably; returns its size in bytes."""
    record.updated = time.time()
    data = json.dumps(asdict(record), indent=1).encode()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _replace(tmp, path)
    fsync_path(path.parent)
    return len(data)


def _replace(src: Path, dst: Path) -> None:
    os.replace(src, dst)  # its own function: the crash tests pause here, between write and rename


def fsync_path(path: Path) -> None:
    """Push a file's written pages, or a folder's entries, to the disk (any descriptor will do)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_record(path: Path) -> ResumeRecord | None:
    """The record, or None if there is none; an unreadable one is an error naming the file."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"version {data.get('version')}")
        return ResumeRecord(**data)
    except (ValueError, TypeError) as exc:
        raise UserError(
            "--resume", f"{path} cannot be read ({exc})", "delete it and start again with --overwrite"
        ) from None


def remove_record(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".tmp").unlink(missing_ok=True)


def first_difference(recorded: dict, current: dict) -> str | None:
    """The first setting that differs, as ``flag (was X, now Y)``; None when all are the same."""
    for key in sorted(set(recorded) | set(current)):
        if recorded.get(key) != current.get(key):
            return f"{key} (was {recorded.get(key)}, now {current.get(key)})"
    return None


@dataclass(frozen=True)
class ResumePoint:
    """Where a run starts: clip ``clips`` (0: from the start), ``frames`` already in ``source``."""

    clips: int = 0
    frames: int = 0
    source: Path | None = None
    expected_state: dict | None = None


def choose_point(record: ResumeRecord, partial: Path, fps: int) -> ResumePoint:
    """The last segment end that both the record and the partial MP4 hold."""
    from liveavatar.media.continuation import finished_frames

    in_file = finished_frames(partial, fps) if partial.exists() else 0
    best = ResumePoint()
    for clips, frames in record.segments:
        if clips <= record.clips_done and frames <= in_file:
            best = ResumePoint(clips, frames, partial, record.states.get(str(clips)))
    return best


def refuse_unfinished(config: GenerateConfig, output: Path, notify) -> None:
    """Before any work: an interrupted run of this output is never overwritten by accident."""
    if config.resume:
        if config.save_file is None:
            raise UserError(
                "--resume",
                "no --save_file given",
                "pass the --save_file of the interrupted run (the default name changes with the time)",
            )
        return
    record = read_record(record_path(output))
    if record is None or record.clips_done == 0:
        return
    where = f"clip {record.clips_done} of {record.num_clips}"
    if not config.overwrite:
        raise UserError(
            "--save_file",
            f"{output} belongs to an interrupted run ({record.clips_done} of {record.num_clips} clips finished)",
            f"rerun with --resume to continue from {where}, or pass --overwrite to start again",
        )
    notify(f"note: starting again; the interrupted run in {output.name} (stopped at {where}) is discarded")


@dataclass
class RunStart:
    """How a run begins: from ``point`` (clip 0 for a new run), keeping ``record`` up to date."""

    point: ResumePoint
    record: ResumeRecord


def prepare(config: GenerateConfig, plan: Plan, output: Path, notify) -> RunStart | None:
    """The start of this run, checking a resumed one against its record (or a finished video against
    the settings it was made with); None: nothing to do."""
    from liveavatar.media.writer import partial_path

    path = record_path(output)
    settings = run_settings(config, plan)
    fresh = ResumeRecord(
        settings=settings,
        num_clips=plan.num_clips,
        num_frames=plan.num_frames,
        segments=[list(e) for e in segment_ends(plan)],
    )
    if not config.resume:
        return RunStart(ResumePoint(), fresh)
    record = read_record(path)
    # a record beside a finished video: an interrupted --overwrite run of it (its partial is there:
    # resume that), or a crash between the final rename and the record's removal (no partial)
    if output.exists() and (record is None or not partial_path(output).exists()):
        refuse_other_finished(output, settings)
        remove_record(path)
        notify(f"note: nothing to do: {output} is already complete")
        return None
    if record is None:
        notify(f"note: no interrupted run of {output.name} to resume; starting from clip 0")
        return RunStart(ResumePoint(), fresh)
    differs = first_difference(record.settings, settings)
    if differs:
        raise UserError(
            "--resume",
            f"the interrupted run of {output.name} used other settings: {differs}",
            "rerun with the same arguments and inputs, or pass --overwrite instead of --resume to start again",
        )
    point = choose_point(record, partial_path(output), plan.fps)
    notify(f"note: resuming {output.name} from clip {point.clips} of {plan.num_clips} ({point.frames} frames kept)")
    return RunStart(point, record)


COMMENT_PREFIX = "liveavatar-settings "


def settings_comment(settings: dict) -> str:
    """The run's settings as the finished MP4's comment tag: a later --resume compares with them."""
    return COMMENT_PREFIX + json.dumps(settings, sort_keys=True, separators=(",", ":"))


def made_with(video: Path) -> dict | None:
    """The settings a finished video was made with (its comment tag); None when it does not say."""
    import av

    try:
        with av.open(str(video)) as container:
            comment = container.metadata.get("comment", "")
        return json.loads(comment[len(COMMENT_PREFIX) :]) if comment.startswith(COMMENT_PREFIX) else None
    except (OSError, ValueError, av.error.FFmpegError):
        return None


def refuse_other_finished(output: Path, settings: dict) -> None:
    """--resume of a finished video: refused, naming the difference, unless it was made with these settings."""
    made = made_with(output)
    fix = "pass --overwrite instead of --resume to make it again, or give another --save_file"
    if made is None:
        raise UserError("--resume", f"{output.name} is complete but does not say what it was made with", fix)
    differs = first_difference(made, settings)
    if differs:
        raise UserError("--resume", f"{output.name} is complete and was made with other settings: {differs}", fix)


def check_replay(expected: dict | None, actual: dict | None, notify) -> None:
    """After the replay of the finished clips: the engine must stand where the interrupted run stood."""
    if expected is not None and actual is not None and expected != actual:
        diff = sorted(k for k in expected if expected.get(k) != actual.get(k))
        notify(
            f"warning: the replay of the finished clips differs from the interrupted run in {', '.join(diff)} "
            "(non-deterministic kernels?); the video continues but is not bit-identical to an uninterrupted run"
        )


def status(output: Path) -> tuple[int, int] | None:
    """``(clips finished, clips in all)`` of an interrupted run of ``output``, or None.

    For front-ends (the server lists the jobs it can continue, then calls ``pipeline.run`` with
    ``resume=True`` and the job's config).
    """
    record = read_record(record_path(output))
    return None if record is None or record.clips_done == 0 else (record.clips_done, record.num_clips)
