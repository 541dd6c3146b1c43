"""--resume on the tiny diffusion checkpoint: runs SIGKILLed at chosen points continue to the same video.

One chain of subprocess runs (each tiny run costs seconds, so the cases share them): killed inside
a block, then while the resume record is being replaced, then between two blocks, then finished;
the final MP4's decoded frames and audio must equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from liveavatar import resume
from liveavatar.cli import main
from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

CHILD = Path(__file__).with_name("resume_child.py")
STEPS, FRAMES, CLIPS = 2, 24, 4  # 2 blocks per clip; a writer segment per clip (see resume_child)
DIT_CALLS_PER_CLIP = STEPS * 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory, portrait_path):
    root = tmp_path_factory.mktemp("resume")
    ckpt, lora = write_tiny_checkpoint(root / "release")
    t = np.arange(int(CLIPS * FRAMES / 25 * 16000)) / 16000
    sf.write(
        str(root / "a.wav"),
        (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32),
        16000,
    )
    args = [
        "generate",
        "--engine",
        "diffusion",
        "--ckpt_dir",
        str(ckpt),
        "--lora_path_dmd",
        str(lora),
        "--image",
        str(portrait_path),
        "--audio",
        str(root / "a.wav"),
        "--size",
        "64*64",
        "--infer_frames",
        str(FRAMES),
        "--sample_steps",
        str(STEPS),
        "--num_clip",
        str(CLIPS),
        "--skip_checks",
    ]
    return root, args


def decoded(path: Path) -> tuple[list[str], np.ndarray]:
    with av.open(str(path)) as c:
        frames = [hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest() for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    return frames, audio


def errors(capsys) -> list[str]:
    """stderr's lines but the notes (e.g. the one about a step count other than the distilled 4)."""
    return [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note:")]


def run_until_paused(args: list[str], pause: str, marker: Path) -> subprocess.CompletedProcess:
    """Start a run that stops at ``pause``; SIGKILL it there. Returns its output."""
    marker.unlink(missing_ok=True)
    env = dict(os.environ, LIVEAVATAR_TEST_PAUSE=pause, LIVEAVATAR_TEST_PAUSED=str(marker))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 900
    while not marker.exists():
        assert proc.poll() is None, f"the run ended before {pause}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{pause} not reached"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_child(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEAVATAR_TEST_")}
    return subprocess.run([sys.executable, str(CHILD), *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_killed_three_times_then_resumed_gives_the_uninterrupted_video(setup, capsys, monkeypatch):
    root, args = setup
    monkeypatch.setattr(resume, "SEGMENT_MIN_FRAMES", 1)  # as in the child runs
    reference = root / "reference.mp4"
    assert main([*args, "--save_file", str(reference)]) == 0
    capsys.readouterr()
    out = root / "v.mp4"
    record, partial, marker = resume.record_path(out), root / "v.partial.mp4", root / "paused"
    run = [*args, "--save_file", str(out)]

    # 1. killed inside a block of clip 2 (its second block, mid-steps)
    run_until_paused(run, f"dit:{2 * DIT_CALLS_PER_CLIP + STEPS + 1}", marker)
    assert partial.exists() and not out.exists()
    kept = json.loads(record.read_text())
    assert kept["clips_done"] == 2 and kept["num_clips"] == CLIPS
    record_bytes = record.stat().st_size

    # without --resume: one line that says how to continue; a changed setting is refused by name
    assert main(run) == 2
    err = errors(capsys)
    assert len(err) == 1 and "rerun with --resume to continue from clip 2 of 4" in err[0]
    assert main([*run, "--resume", "--base_seed", "421"]) == 2
    err = errors(capsys)
    assert len(err) == 1 and err[0].startswith("error: --resume:") and "--base_seed (was 420, now 421)" in err[0]

    # 2. resumed, killed while the record of clip 3 is written (temporary file written, not renamed)
    paused = run_until_paused([*run, "--resume"], "record:1", marker)
    assert "resuming v.mp4 from clip" in paused.stderr
    assert json.loads(record.read_text())["clips_done"] == 2  # the previous record, whole
    assert record.with_name(record.name + ".tmp").exists()

    # 3. resumed, killed between two blocks (after the first block it writes)
    paused = run_until_paused([*run, "--resume"], "write:1", marker)
    assert "resuming v.mp4 from clip" in paused.stderr

    # 4. resumed to the end: the same video, frame for frame, and the same audio
    done = run_child([*run, "--resume"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert "warning" not in done.stderr, done.stderr  # the replay reached the recorded state
    assert not record.exists() and not partial.exists()
    frames, audio = decoded(out)
    ref_frames, ref_audio = decoded(reference)
    assert len(frames) == len(ref_frames) == CLIPS * FRAMES
    assert frames == ref_frames
    assert np.array_equal(audio, ref_audio)

    # 5. a finished run: nothing to do
    assert main([*run, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "nothing to do" in captured.err and captured.out.strip().splitlines()[-1] == str(out)
    print(f"resume record: {record_bytes} bytes after 2 of {CLIPS} clips")
