"""Resume records and the writer's continuation (fast, in-process); the tiny diffusion chain of
SIGKILLed runs is in tests/diffusion/test_resume_tiny.py."""

from __future__ import annotations

import hashlib
import json

import av
import numpy as np
import pytest

from liveavatar import resume
from liveavatar.cli import main
from liveavatar.errors import UserError
from liveavatar.media.continuation import finished_frames
from liveavatar.media.writer import VideoWriter


def frame_hashes(path) -> list[str]:
    """Hashes of the decoded frames, up to the first packet a crash tore (as a player stops there)."""
    out = []
    with av.open(str(path)) as c:
        try:
            for f in c.decode(video=0):
                out.append(hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest())
        except av.FFmpegError:
            pass
    return out


def textured(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 64)[None, None, :, None]
    return np.clip(ramp + rng.normal(0, 12, (n, 64, 64, 3)), 0, 255).astype(np.uint8)


def test_continued_file_decodes_like_the_uninterrupted_one_from_any_torn_prefix(tmp_path, speech_path):
    segments = [textured(24, s) for s in range(4)]
    full = tmp_path / "full.mp4"
    writer = VideoWriter(full, 64, 64, 25, speech_path)
    for seg in segments:
        writer.write(seg[:10])
        writer.write(seg[10:])
        writer.end_segment()
    writer.finish()
    want = frame_hashes(full)
    data = full.read_bytes()
    ends = [24, 48, 72, 96]
    seen = set()
    for cut in np.linspace(len(data) * 0.2, len(data) - 1, 7).astype(int):  # torn where a crash could tear it
        torn = tmp_path / "torn.mp4"
        torn.write_bytes(data[:cut])
        whole = finished_frames(torn, 25)
        assert frame_hashes(torn)[:whole] == want[:whole]
        kept = [e for e in ends if e <= whole]
        seen.add(len(kept))
        out = tmp_path / f"cont{cut}.mp4"
        cont = VideoWriter(out, 64, 64, 25, speech_path)
        cont.copy_finished(torn, kept)
        for seg in segments[len(kept) :]:
            cont.write(seg)
            cont.end_segment()
        cont.finish()
        assert frame_hashes(out) == want
        with av.open(str(out)) as a, av.open(str(full)) as b:
            assert np.array_equal(
                np.concatenate([f.to_ndarray().ravel() for f in a.decode(audio=0)]),
                np.concatenate([f.to_ndarray().ravel() for f in b.decode(audio=0)]),
            )
    assert len(seen) >= 3, seen  # the cuts fell in different segments


def test_record_is_replaced_whole_and_a_torn_one_is_one_error(tmp_path):
    path = tmp_path / "v.resume.json"
    record = resume.ResumeRecord(
        settings={"--size": "64*64"}, num_clips=9, num_frames=200, segments=[[c, 24 * c] for c in range(1, 10)]
    )
    for clip in range(1, 8):
        record.finish_segment(clip, 24 * clip, {"clips": clip, "x": "y"})
        size = resume.write_record(path, record)
    assert size == path.stat().st_size < 4096
    back = resume.read_record(path)
    assert back.clips_done == 7 and sorted(back.states, key=int) == ["4", "5", "6", "7"]
    assert not path.with_name(path.name + ".tmp").exists()
    path.write_text(path.read_text()[:50])
    with pytest.raises(UserError, match="cannot be read"):
        resume.read_record(path)


def test_resume_point_is_what_both_the_record_and_the_file_hold(tmp_path):
    partial = tmp_path / "v.partial.mp4"
    writer = VideoWriter(tmp_path / "v.mp4", 64, 64, 25, None, work_path=partial)
    for n in (24, 24, 20):
        writer.write(textured(n, n))
        writer.end_segment()
    writer.abort()
    record = resume.ResumeRecord(settings={}, num_clips=4, num_frames=96, segments=[[1, 24], [2, 48], [3, 72], [4, 96]])
    record.finish_segment(3, 72, None)
    assert resume.choose_point(record, partial, 25).clips == 2  # the file has 68 frames: clip 3 is not whole
    record.finish_segment(1, 24, None)
    assert resume.choose_point(record, partial, 25).clips == 1


@pytest.fixture
def preview_args(portrait_path, speech_path, tmp_path):
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


def test_preview_run_interrupted_then_resumed_equals_uninterrupted(preview_args, tmp_path, capsys, monkeypatch):
    from liveavatar.engines.preview.render import Renderer

    reference, out = tmp_path / "ref.mp4", tmp_path / "v.mp4"
    assert main([*preview_args, "--save_file", str(reference)]) == 0
    real, calls = Renderer.render, [0]

    def failing(self, p):
        calls[0] += 1
        if calls[0] > 80:  # inside clip 3 (24-frame clips; segments of 2 clips)
            raise KeyboardInterrupt
        return real(self, p)

    monkeypatch.setattr(Renderer, "render", failing)
    assert main([*preview_args, "--save_file", str(out)]) != 0  # Ctrl-C
    assert "rerun with --resume to continue" in capsys.readouterr().err
    record = json.loads(resume.record_path(out).read_text())
    assert record["clips_done"] == 2 and record["segments"][0] == [2, 48]
    assert record["states"]["2"]["clips"] == 2  # what the resumed run checks its replay against
    assert resume.status(out) == (2, 5)
    rendered = []
    monkeypatch.setattr(Renderer, "render", lambda self, p: rendered.append(1) or real(self, p))
    assert main([*preview_args, "--save_file", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resuming v.mp4 from clip 2 of" in err and "warning" not in err
    assert frame_hashes(out) == frame_hashes(reference)
    assert len(rendered) == len(frame_hashes(reference)) - 48  # the finished clips were not rendered again
    assert not resume.record_path(out).exists() and not (tmp_path / "v.partial.mp4").exists()


def test_resume_needs_the_save_file(preview_args, capsys):
    assert main([*preview_args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--save_file" in err[0]


def test_resume_without_a_record_starts_from_clip_0(preview_args, tmp_path, capsys):
    out = tmp_path / "v.mp4"
    assert main([*preview_args, "--save_file", str(out), "--resume", "--num_clip", "1"]) == 0
    assert "starting from clip 0" in capsys.readouterr().err
    assert len(frame_hashes(out)) == 24


def test_a_replay_that_differs_is_said_in_one_warning():
    said: list[str] = []
    resume.check_replay({"clips": 2, "rng": "a", "latents": "b"}, {"clips": 2, "rng": "a", "latents": "c"}, said.append)
    resume.check_replay({"clips": 2, "rng": "a"}, {"clips": 2, "rng": "a"}, said.append)
    assert len(said) == 1 and said[0].startswith("warning:") and "latents" in said[0] and "rng" not in said[0]


def test_resumed_in_its_last_segment_leaves_only_the_video(preview_args, tmp_path, capsys, monkeypatch):
    from liveavatar.engines.preview.render import Renderer

    out, real, calls = tmp_path / "v.mp4", Renderer.render, [0]

    def failing(self, p):
        calls[0] += 1
        if calls[0] > 100:  # inside clip 5 of 5: the last segment (clips 5-6 would be one)
            raise KeyboardInterrupt
        return real(self, p)

    monkeypatch.setattr(Renderer, "render", failing)
    assert main([*preview_args, "--save_file", str(out)]) != 0
    monkeypatch.setattr(Renderer, "render", real)
    assert main([*preview_args, "--save_file", str(out), "--resume"]) == 0
    assert "from clip 4 of 5" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
