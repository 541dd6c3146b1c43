"""One `error:` line (exit 2) where a traceback or useless advice used to come: a read-only working
folder for the default output/, a face too small for any --size, more DiT workers than steps can exist."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from liveavatar.cli import main
from liveavatar.config import GenerateConfig
from liveavatar.errors import UserError


def only_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_default_output_in_a_read_only_folder(tmp_path, monkeypatch, capsys, portrait_path, speech_path):
    cwd = tmp_path / "ro"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cwd.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the folder's creation fail as it would for a user
        real = Path.mkdir

        def refuse(self, *args, **kwargs):
            if self.name == "output":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refuse)
    try:
        code = main(
            [
                "generate",
                "--engine",
                "preview",
                "--image",
                str(portrait_path),
                "--audio",
                str(speech_path),
                "--num_clip",
                "1",
                "--skip_checks",
            ]
        )
    finally:
        cwd.chmod(0o755)
    assert code == 2
    assert only_error(capsys) == (
        "error: --save_file: the folder output cannot be created (Permission denied); "
        "run from a folder you can write to, or give --save_file in one"
    )
    assert list(cwd.iterdir()) == []


def test_a_face_too_small_for_any_size_is_not_told_to_choose_a_larger_size(
    tmp_path, capsys, portrait_path, speech_path
):
    from PIL import Image

    small = tmp_path / "small.png"
    Image.open(portrait_path).resize((128, 128)).save(small)
    args = ["generate", "--engine", "preview", "--audio", str(speech_path), "--num_clip", "1", "--skip_checks"]
    assert main([*args, "--image", str(small), "--save_file", str(tmp_path / "a.mp4")]) == 2
    line = only_error(capsys)
    assert "--size" not in line and "at least 48 pixels tall" in line
    # the same face in a larger portrait shrunk by --size: a larger --size does help, and is said
    assert (
        main([*args, "--image", str(portrait_path), "--size", "128*128", "--save_file", str(tmp_path / "b.mp4")]) == 2
    )
    assert "choose a larger --size" in only_error(capsys)
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


@pytest.mark.parametrize("workers,advice", [(9, "use --num_gpus_dit 4 or fewer"), (5, "or --sample_steps 5 or more")])
def test_too_many_dit_workers_get_advice_that_can_be_followed(workers, advice):
    pytest.importorskip("torch")
    from liveavatar.engines.diffusion.runtime.ranks import plan_roles

    with pytest.raises(UserError) as refused:
        plan_roles(GenerateConfig(image=Path(), audio=Path(), num_gpus_dit=workers, sample_steps=4))
    assert refused.value.fix.endswith(advice)
    if workers > 8:
        assert "--sample_steps" not in refused.value.fix
