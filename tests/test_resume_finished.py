"""--resume on a finished video: compared with the settings it was made with (its MP4 comment tag),
and an interrupted --overwrite run of it stays resumable."""

from __future__ import annotations

import pytest

from liveavatar import resume
from liveavatar.cli import main
from test_resume import frame_hashes


@pytest.fixture
def preview_args(portrait_path, speech_path):
    return [
        "generate",
        "--engine",
        "preview",
        "--image",
        str(portrait_path),
        "--audio",
        str(speech_path),
        "--size",
        "256*256",
        "--infer_frames",
        "24",
        "--skip_checks",
    ]


def one_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if not line.startswith("note: ")]  # the coverage note may come first
    assert len(errors) == 1 and errors[0].startswith("error: "), lines
    return errors[0]


def test_resume_of_a_finished_video_compares_its_settings(preview_args, tmp_path, capsys, speech_path):
    import numpy as np
    import soundfile

    out = tmp_path / "v.mp4"
    assert main([*preview_args, "--num_clip", "2", "--save_file", str(out)]) == 0
    made = resume.made_with(out)
    assert made["--base_seed"] == 420 and made["--num_clip"] == 2
    before = out.read_bytes()
    capsys.readouterr()
    assert main([*preview_args, "--num_clip", "2", "--save_file", str(out), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert main([*preview_args, "--num_clip", "2", "--save_file", str(out), "--resume", "--base_seed", "7"]) == 2
    assert "--base_seed (was 420, now 7)" in one_error(capsys)
    other = tmp_path / "other.wav"  # another speech track: a 3 s tone
    soundfile.write(str(other), (0.3 * np.sin(2 * np.pi * 220 * np.arange(48_000) / 16_000)).astype(np.float32), 16_000)
    args = [a if a != str(speech_path) else str(other) for a in preview_args]
    assert main([*args, "--num_clip", "2", "--save_file", str(out), "--resume"]) == 2
    assert "made with other settings: --audio" in one_error(capsys)
    assert out.read_bytes() == before


def test_a_finished_video_that_does_not_say_is_refused(preview_args, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    out.write_bytes(b"not made by us")
    assert main([*preview_args, "--num_clip", "1", "--save_file", str(out), "--resume"]) == 2
    assert "does not say what it was made with" in one_error(capsys)


def test_an_interrupted_overwrite_run_stays_resumable(preview_args, tmp_path, capsys, monkeypatch):
    from liveavatar.engines.preview.render import Renderer

    out, reference = tmp_path / "v.mp4", tmp_path / "ref.mp4"
    assert main([*preview_args, "--num_clip", "1", "--save_file", str(out)]) == 0  # an older finished video
    assert main([*preview_args, "--save_file", str(reference)]) == 0
    real, calls = Renderer.render, [0]

    def failing(self, p):
        calls[0] += 1
        if calls[0] > 80:  # inside clip 3
            raise KeyboardInterrupt
        return real(self, p)

    monkeypatch.setattr(Renderer, "render", failing)
    assert main([*preview_args, "--save_file", str(out), "--overwrite"]) != 0
    assert resume.status(out) == (2, 5)
    monkeypatch.setattr(Renderer, "render", real)
    capsys.readouterr()
    assert main([*preview_args, "--save_file", str(out), "--resume"]) == 0
    assert "resuming v.mp4 from clip 2 of 5" in capsys.readouterr().err
    assert frame_hashes(out) == frame_hashes(reference)
    assert not resume.record_path(out).exists()
