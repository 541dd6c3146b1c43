"""No video is ever lost: claimed output names, unique default names, signals, killed runs, full disks."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

from liveavatar import pipeline
from liveavatar.cli import main

REPO = Path(__file__).resolve().parents[1]

SLOW_RUN = textwrap.dedent("""
    import signal, sys, time
    import numpy as np
    # a shell that started the tests in the background leaves SIGINT ignored in its children: a
    # person's Ctrl-C is what this run stands for, so take Python's own handler back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from liveavatar.engines import select
    from liveavatar.cli import main

    class Slow:
        name = "preview"
        resume_states = {}
        def generate(self, inputs, plan, notify, start_clip=0, memory=None):
            for clip, count in enumerate(plan.clip_frame_counts()):
                if clip < start_clip:
                    continue
                yield np.full((count, plan.height, plan.width, 3), 40 * clip % 255, np.uint8)
                print(f"clip {clip} done", flush=True)
                if clip == 3:
                    time.sleep(60)  # the test stops us here

    select.build_engine = lambda name, config, memory=None: Slow()
    sys.exit(main(sys.argv[1:]))
""")


def args(portrait_path, speech_path, *more: str) -> list[str]:
    return [
        "generate",
        "--image",
        str(portrait_path),
        "--audio",
        str(speech_path),
        "--engine",
        "preview",
        "--size",
        "128*128",
        "--infer_frames",
        "16",
        *more,
    ]


def frames_in(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def start_slow_run(tmp_path: Path, portrait_path, speech_path, out: Path) -> subprocess.Popen:
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args(portrait_path, speech_path, "--save_file", str(out))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    for line in proc.stdout:  # wait until four clips (64 frames, 2.56 s) are written
        if line.startswith("clip 3 done"):
            break
    else:
        raise AssertionError(proc.stderr.read())
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_termination_signals_keep_the_partial_like_ctrl_c(tmp_path, portrait_path, speech_path, sig):
    folder = tmp_path / "out"
    folder.mkdir()
    proc = start_slow_run(tmp_path, portrait_path, speech_path, folder / "v.mp4")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    partial = folder / "v.partial.mp4"
    assert f"what was finished is in {partial}" in err and err.strip().splitlines()[-1].startswith("error: interrupted")
    # no hidden temp file or lock is left; the resume record stays (four clips are finished)
    assert sorted(p.name for p in folder.iterdir()) == ["v.partial.mp4", "v.resume.json"]
    assert "rerun with --resume to continue" in err
    assert frames_in(partial) == 64


def test_killed_run_leftovers_are_tidied_by_the_next_run(tmp_path, portrait_path, speech_path, flat_engine, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    proc = start_slow_run(tmp_path, portrait_path, speech_path, folder / "v.mp4")
    proc.kill()
    proc.wait(timeout=30)
    left = sorted(p.name for p in folder.iterdir())
    # a resumable run writes its partial in place, with its resume record beside it
    assert left == [".v.mp4.lock", "v.partial.mp4", "v.resume.json"], left
    assert frames_in(folder / "v.partial.mp4") >= 16
    # the dead run's claim does not block the name, but its finished work is not discarded unasked
    assert main(args(portrait_path, speech_path, "--save_file", str(folder / "v.mp4"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rerun with --resume" in err[0], err
    assert main(args(portrait_path, speech_path, "--save_file", str(folder / "v.mp4"), "--resume")) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["v.mp4"]


def test_name_being_written_by_a_live_run_is_refused(tmp_path, portrait_path, speech_path, flat_engine, capsys):
    from liveavatar.media.output import lock_path

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "v.mp4"
        lock_path(out).write_text(str(other.pid))
        for extra in ([], ["--overwrite"]):
            code = main(args(portrait_path, speech_path, "--save_file", str(out), *extra))
            err = capsys.readouterr().err.strip().splitlines()
            assert (
                code == 2 and len(err) == 1 and err[0].startswith("error: --save_file") and f"pid {other.pid}" in err[0]
            )
        assert not out.exists() and lock_path(out).read_text() == str(other.pid)
    finally:
        other.kill()
        other.wait()


def test_second_run_with_the_same_save_file_fails_in_one_line(
    tmp_path, portrait_path, speech_path, flat_engine, capsys
):
    out = tmp_path / "v.mp4"
    assert main(args(portrait_path, speech_path, "--save_file", str(out))) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert main(args(portrait_path, speech_path, "--save_file", str(out))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    assert out.read_bytes() == first
    assert main(args(portrait_path, speech_path, "--save_file", str(out), "--overwrite")) == 0


def test_default_names_in_the_same_second_are_unique(
    tmp_path, portrait_path, speech_path, flat_engine, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    frozen = time.localtime(1_700_000_000)
    monkeypatch.setattr(pipeline.time, "localtime", lambda now=None: frozen)
    printed = []
    for _ in range(3):
        assert main(args(portrait_path, speech_path, "--prompt", "same prompt")) == 0
        printed.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(set(printed)) == 3 and all(Path(p).exists() for p in printed)
    assert Path(printed[1]).stem == Path(printed[0]).stem + "_2"
    assert not [p for p in (tmp_path / "output").iterdir() if p.name.startswith(".")]


def test_full_disk_says_where_the_partial_is(tmp_path, portrait_path, speech_path, flat_engine, capsys, monkeypatch):
    from liveavatar.media.writer import VideoWriter

    real_write, calls = VideoWriter.write, []

    def write(self, frames):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, frames)

    monkeypatch.setattr(VideoWriter, "write", write)
    out = tmp_path / "v.mp4"
    code = main(args(portrait_path, speech_path, "--save_file", str(out)))
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning: --")]
    assert code == 2 and len(err) == 1, err
    assert "full" in err[0] and "after 32 of" in err[0] and str(tmp_path / "v.partial.mp4") in err[0]
    assert frames_in(tmp_path / "v.partial.mp4") == 32
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4" or p.name.startswith(".v")) == [
        "v.partial.mp4"
    ]


@pytest.mark.parametrize("kind", ["fifo", "symlink to /dev/null", "folder"])
def test_save_file_on_a_special_file_is_one_line(tmp_path, portrait_path, speech_path, flat_engine, capsys, kind):
    out = tmp_path / "v.mp4"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "folder":
        out.mkdir()
    else:
        out.symlink_to(os.devnull)
    code = main(args(portrait_path, speech_path, "--save_file", str(out), "--overwrite"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --save_file"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_lock_of_a_reused_pid_is_stale(tmp_path, portrait_path, speech_path, flat_engine):
    """A killed run's pid now used by another program (not Python) does not hold the name."""
    from liveavatar.media.output import lock_path

    other = subprocess.Popen(["sleep", "60"])
    try:
        out = tmp_path / "v.mp4"
        lock_path(out).write_text(str(other.pid))
        assert main(args(portrait_path, speech_path, "--save_file", str(out))) == 0
        assert out.exists() and not lock_path(out).exists()
    finally:
        other.kill()
        other.wait()
