"""Every bad input or option: exit 2, one `error:` line naming the input, no output file left."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from liveavatar.cli import main


def run_cli(capsys, args: list[str]) -> tuple[int, str, str]:
    code = main(["generate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in err


@pytest.fixture
def files(tmp_path, portrait_path, speech_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    (tmp_path / "notes.txt").write_text("not an image and not audio " * 20)
    out = tmp_path / "out"
    out.mkdir()
    return {"image": str(portrait_path), "audio": str(speech_path), "tmp": tmp_path, "out": out}


CASES = [
    # (name, args builder, needles)
    (
        "missing image",
        lambda f: ["--image", str(f["tmp"] / "nope.png"), "--audio", f["audio"]],
        ["--image", "not found"],
    ),
    ("empty image", lambda f: ["--image", str(f["tmp"] / "empty.png"), "--audio", f["audio"]], ["--image", "empty"]),
    ("corrupt image", lambda f: ["--image", str(f["tmp"] / "corrupt.png"), "--audio", f["audio"]], ["--image"]),
    ("audio as image", lambda f: ["--image", f["audio"], "--audio", f["audio"]], ["--image", "not an image"]),
    ("text as image", lambda f: ["--image", str(f["tmp"] / "notes.txt"), "--audio", f["audio"]], ["--image"]),
    (
        "missing audio",
        lambda f: ["--image", f["image"], "--audio", str(f["tmp"] / "nope.wav")],
        ["--audio", "not found"],
    ),
    ("empty audio", lambda f: ["--image", f["image"], "--audio", str(f["tmp"] / "empty.wav")], ["--audio", "empty"]),
    ("image as audio", lambda f: ["--image", f["image"], "--audio", f["image"]], ["--audio"]),
    ("text as audio", lambda f: ["--image", f["image"], "--audio", str(f["tmp"] / "notes.txt")], ["--audio"]),
    ("size abc", lambda f: ["--image", f["image"], "--audio", f["audio"], "--size", "abc"], ["--size"]),
    ("size 0*0", lambda f: ["--image", f["image"], "--audio", f["audio"], "--size", "0*0"], ["--size"]),
    ("size -5*10", lambda f: ["--image", f["image"], "--audio", f["audio"], "--size=-5*10"], ["--size"]),
    ("num_clip 0", lambda f: ["--image", f["image"], "--audio", f["audio"], "--num_clip", "0"], ["--num_clip"]),
    ("num_clip -3", lambda f: ["--image", f["image"], "--audio", f["audio"], "--num_clip=-3"], ["--num_clip"]),
    ("num_clip text", lambda f: ["--image", f["image"], "--audio", f["audio"], "--num_clip", "many"], ["--num_clip"]),
    (
        "infer_frames 0",
        lambda f: ["--image", f["image"], "--audio", f["audio"], "--infer_frames", "0"],
        ["--infer_frames"],
    ),
    (
        "infer_frames 30",
        lambda f: ["--image", f["image"], "--audio", f["audio"], "--infer_frames", "30"],
        ["--infer_frames", "multiple of 4"],
    ),
    (
        "sample_steps -1",
        lambda f: ["--image", f["image"], "--audio", f["audio"], "--sample_steps=-1"],
        ["--sample_steps"],
    ),
    (
        "missing folder",
        lambda f: [
            "--image",
            f["image"],
            "--audio",
            f["audio"],
            "--save_file",
            str(f["tmp"] / "no" / "such" / "x.mp4"),
        ],
        ["--save_file", "does not exist"],
    ),
    (
        "not mp4",
        lambda f: ["--image", f["image"], "--audio", f["audio"], "--save_file", str(f["out"] / "x.avi")],
        ["--save_file", ".mp4"],
    ),
    (
        "no checkpoint",
        lambda f: [
            "--image",
            f["image"],
            "--audio",
            f["audio"],
            "--engine",
            "diffusion",
            "--ckpt_dir",
            str(f["tmp"] / "ckpt"),
        ],
        ["--ckpt_dir", "missing"],
    ),
    ("bad engine", lambda f: ["--image", f["image"], "--audio", f["audio"], "--engine", "magic"], ["--engine"]),
    ("bad preset", lambda f: ["--image", f["image"], "--audio", f["audio"], "--preset", "ultra"], ["--preset"]),
]


@pytest.mark.parametrize("name,build,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(capsys, files, monkeypatch, name, build, needles):
    monkeypatch.chdir(files["tmp"])
    before = set(files["out"].iterdir())
    code, out, err = run_cli(
        capsys,
        [*build(files), "--save_file", str(files["out"] / "video.mp4")]
        if "--save_file" not in build(files)
        else build(files),
    )
    assert_one_line_error(code, err, *needles)
    assert set(files["out"].iterdir()) == before
    assert not (files["tmp"] / "output").exists()


def test_existing_output_needs_overwrite(capsys, files):
    target = files["out"] / "video.mp4"
    target.write_bytes(b"keep me")
    code, _, err = run_cli(capsys, ["--image", files["image"], "--audio", files["audio"], "--save_file", str(target)])
    assert_one_line_error(code, err, "--save_file", "--overwrite")
    assert target.read_bytes() == b"keep me"


def test_unwritable_folder(capsys, files, monkeypatch):
    import os

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == files["out"] else real_access(p, mode))
    code, _, err = run_cli(
        capsys, ["--image", files["image"], "--audio", files["audio"], "--save_file", str(files["out"] / "v.mp4")]
    )
    assert_one_line_error(code, err, "--save_file", "not writable")


def test_real_process_prints_no_traceback(files):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "liveavatar",
            "generate",
            "--image",
            str(files["tmp"] / "corrupt.png"),
            "--audio",
            files["audio"],
        ],
        capture_output=True,
        text=True,
        cwd=files["tmp"],
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --image")
    assert not (files["tmp"] / "output").exists()
