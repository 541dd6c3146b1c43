"""Damaged checkpoint files (an interrupted download, a wrong file) are one line naming the file, exit 2."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from liveavatar.cli import main  # noqa: E402
from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARD = "diffusion_pytorch_model-00002-of-00002.safetensors"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release")
    write_tiny_checkpoint(root)
    return root


@pytest.fixture
def release(pristine, tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "release"
    shutil.copytree(pristine, root)
    return root / "Wan2.2-S2V-14B", root / "LiveAvatar" / "liveavatar.safetensors"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated shard": (lambda ck, lora: truncate(ck / SHARD), SHARD, "re-download"),
    "garbage shard": (
        lambda ck, lora: (ck / SHARD).write_bytes(np.random.default_rng(0).bytes(5000)),
        SHARD,
        "re-download",
    ),
    "empty shard": (lambda ck, lora: (ck / SHARD).write_bytes(b""), SHARD, "re-download"),
    "malformed config.json": (
        lambda ck, lora: (ck / "config.json").write_text('{"dim": 64,'),
        "config.json",
        "re-download",
    ),
    "config.json not an object": (
        lambda ck, lora: (ck / "config.json").write_text("[1, 2]"),
        "config.json",
        "re-download",
    ),
    "config.json wrong types": (
        lambda ck, lora: (ck / "config.json").write_text(
            json.dumps({**json.loads((ck / "config.json").read_text()), "num_heads": "many"})
        ),
        "config.json",
        "re-download",
    ),
    "malformed index": (
        lambda ck, lora: (ck / "diffusion_pytorch_model.safetensors.index.json").write_text("{oops"),
        "index.json",
        "re-download",
    ),
    "text file as the LoRA": (
        lambda ck, lora: lora.write_text("this is not a LoRA\n" * 50),
        "liveavatar.safetensors",
        "--lora_path_dmd",
    ),
    "truncated LoRA": (lambda ck, lora: truncate(lora), "liveavatar.safetensors", "re-download"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_is_one_line(case, release, tmp_path, portrait_path, speech_path, capsys):
    ckpt, lora = release
    damage, names, hint = DAMAGE[case]
    damage(ckpt, lora)
    code = main(
        [
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
            str(speech_path),
            "--size",
            "128*128",
            "--skip_checks",
            "--save_file",
            str(tmp_path / "v.mp4"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert names in errors[0] and hint in errors[0]
    assert not (tmp_path / "v.mp4").exists()


def test_tiny_checkpoint_try_line_works_from_any_folder(tmp_path):
    """The printed command uses absolute paths, so it runs from another folder as printed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    made = subprocess.run(
        [sys.executable, "-m", "liveavatar", "tiny-checkpoint", "ck"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env=env,
    )
    line = next(x for x in made.stdout.splitlines() if x.startswith("try: "))
    argv = shlex.split(line[len("try: ") :])
    assert argv[:2] == ["liveavatar", "generate"]
    for flag in ("--ckpt_dir", "--lora_path_dmd", "--image", "--audio"):
        value = Path(argv[argv.index(flag) + 1])
        assert value.is_absolute() and value.exists(), (flag, value)
    argv[argv.index("--size") + 1] = "128*128"
    dry = subprocess.run(
        [sys.executable, "-m", "liveavatar", *argv[1:], "--dry_run"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.strip().splitlines()[-1])["engine"] == "diffusion"
