"""The pipeline with a stand-in engine: plan, progress, output naming, failures keep finished work."""

from __future__ import annotations

import dataclasses
import json

import av
import numpy as np
import pytest

from liveavatar.cli import main
from liveavatar.engines import select


class StripesEngine:
    """Test engine: a moving stripe per frame, honouring the plan's clip structure."""

    name = "preview"

    def __init__(self, fail_after_clips: int | None = None):
        self.fail_after_clips = fail_after_clips
        self.resume_states: dict[int, dict] = {}

    def generate(self, inputs, plan, notify, start_clip=0, memory=None):
        for clip, count in enumerate(plan.clip_frame_counts()):
            if self.fail_after_clips is not None and clip == self.fail_after_clips:
                raise RuntimeError("CUDA out of memory (simulated)")
            if clip < start_clip:
                continue
            frames = np.zeros((count, plan.height, plan.width, 3), np.uint8)
            frames[:, :, :, 1] = 80
            yield frames


@pytest.fixture
def fake_engine(monkeypatch):
    holder = {"engine": StripesEngine()}
    monkeypatch.setattr(select, "build_engine", lambda name, config, memory=None: holder["engine"])
    return holder


def test_dry_run_prints_plan_json(capsys, portrait_path, speech_path):
    code = main(
        [
            "generate",
            "--image",
            str(portrait_path),
            "--audio",
            str(speech_path),
            "--dry_run",
            "--engine",
            "diffusion",
            "--preset",
            "quick",
        ]
    )
    assert code == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plan["engine"] == "diffusion" and plan["fps"] == 25
    assert (plan["height"], plan["width"]) == (256, 256)
    assert plan["frames_per_clip"] == 32 and plan["sample_steps"] == 3
    assert plan["timesteps"] == pytest.approx([1000.0, 751.1211, 8.9286], abs=1e-3)
    assert plan["duration_s"] == pytest.approx(plan["num_frames"] / 25)


@pytest.mark.parametrize(
    "flags, notes",
    [
        (["--preset", "quick"], 1),
        (["--preset", "high"], 1),
        (["--sample_steps", "4"], 0),
        (["--preset", "quick", "--engine", "preview"], 0),
    ],
)
def test_step_counts_off_the_distilled_schedule_get_one_note(capsys, portrait_path, speech_path, flags, notes):
    args = [
        "generate",
        "--image",
        str(portrait_path),
        "--audio",
        str(speech_path),
        "--dry_run",
        "--engine",
        "diffusion",
    ]
    assert main([*args, *flags]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "distilled for 4 steps at shift 3" in line]
    assert len(lines) == notes and all(line.startswith("note: ") for line in lines)


def test_success_prints_engine_and_path_last(capsys, fake_engine, portrait_path, speech_path, tmp_path):
    out = tmp_path / "v.mp4"
    code = main(
        [
            "generate",
            "--image",
            str(portrait_path),
            "--audio",
            str(speech_path),
            "--engine",
            "preview",
            "--save_file",
            str(out),
            "--size",
            "384*256",
        ]
    )
    stdout = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert stdout[0].startswith("engine: preview")
    assert stdout[-1] == str(out)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (256, 256)
        frames = sum(1 for _ in c.decode(video=0))
    audio_s = len(__import__("soundfile").read(str(speech_path))[0]) / 16000
    assert frames == int(np.ceil(audio_s * 25 - 1e-9))


def test_num_clip_caps_the_video(capsys, fake_engine, portrait_path, speech_path, tmp_path):
    out = tmp_path / "v.mp4"
    assert (
        main(
            [
                "generate",
                "--image",
                str(portrait_path),
                "--audio",
                str(speech_path),
                "--engine",
                "preview",
                "--save_file",
                str(out),
                "--num_clip",
                "1",
                "--infer_frames",
                "20",
            ]
        )
        == 0
    )
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20


def test_failure_mid_run_keeps_finished_clips_only_as_partial(
    capsys, fake_engine, portrait_path, speech_path, tmp_path
):
    fake_engine["engine"] = StripesEngine(fail_after_clips=1)
    out = tmp_path / "v.mp4"
    code = main(
        [
            "generate",
            "--image",
            str(portrait_path),
            "--audio",
            str(speech_path),
            "--engine",
            "preview",
            "--save_file",
            str(out),
            "--infer_frames",
            "24",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "out of memory" in err and "Traceback" not in err
    assert not out.exists()
    partial = tmp_path / "v.partial.mp4"
    with av.open(str(partial)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 24


@pytest.mark.parametrize(
    "image_hw,size,expected",
    [
        ((720, 1280), "720*400", (384, 704)),
        ((720, 1280), "704*384", (384, 704)),
        ((720, 1280), "688*368", (384, 640)),
        ((720, 1280), "832*480", (448, 832)),
        ((1280, 720), "720*400", (704, 384)),
        ((1280, 720), "704*384", (704, 384)),
        ((1024, 1024), "720*400", (512, 512)),
        ((768, 512), "704*384", (576, 384)),
    ],
)
def test_dry_run_size_matches_upstream_rule(capsys, tmp_path, speech_path, image_hw, size, expected):
    """Landscape, portrait and square portraits through the CLI; expected sizes from upstream-facts §1.1."""
    from PIL import Image

    image = tmp_path / "p.png"
    Image.fromarray(np.full((*image_hw, 3), 128, np.uint8)).save(image)
    assert main(["generate", "--image", str(image), "--audio", str(speech_path), "--size", size, "--dry_run"]) == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (plan["height"], plan["width"]) == expected


def test_hooks_resident_engine_progress_and_stop_keep_the_partial(portrait_path, speech_path, tmp_path):
    """What `liveavatar serve` uses: an engine built once, a report per block, a stop between blocks."""
    from liveavatar import pipeline
    from liveavatar.config import GenerateConfig
    from liveavatar.hooks import Hooks, Stopped

    engine, seen = StripesEngine(), []
    config = GenerateConfig(
        image=portrait_path,
        audio=speech_path,
        engine="preview",
        size="256*256",
        infer_frames=24,
        save_file=tmp_path / "v.mp4",
        skip_checks=True,
    )
    hooks = Hooks(engine=engine, on_block=seen.append, should_stop=lambda: len(seen) == 2)
    with pytest.raises(Stopped):
        pipeline.run(config, say=lambda _: None, notify=lambda _: None, hooks=hooks)
    assert [d.frames_done for d in seen] == [24, 48] and seen[0].growing.suffix == ".mp4"
    assert not (tmp_path / "v.mp4").exists()
    with av.open(str(tmp_path / "v.partial.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 48
    seen.clear()
    hooks = Hooks(engine=engine, on_block=seen.append, should_stop=lambda: False)
    # the server continues a stopped job with resume=True: the 48 kept frames are not made again
    out = pipeline.run(
        dataclasses.replace(config, resume=True), say=lambda _: None, notify=lambda _: None, hooks=hooks
    ).path
    assert out == tmp_path / "v.mp4" and seen[-1].frames_done == seen[-1].frames_total
    assert seen[0].frames_done == 72


def test_prepare_is_what_the_dry_run_prints(capsys, portrait_path, speech_path):
    """One prepare for the dry run, the real run and the server: its summary is the dry run's JSON."""
    from liveavatar import pipeline
    from liveavatar.config import GenerateConfig

    args = ["--image", str(portrait_path), "--audio", str(speech_path), "--engine", "diffusion", "--preset", "quick"]
    assert main(["generate", *args, "--dry_run"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    notes: list[str] = []
    config = GenerateConfig(image=portrait_path, audio=speech_path, engine="diffusion", preset="quick")
    prepared = pipeline.prepare(config, notes.append, checks=False)
    assert prepared.summary() == printed
    assert prepared.engine == "diffusion" and prepared.inputs.audio_seconds > 1
    assert prepared.memory is not None and prepared.memory.mode.name == printed["memory"]["mode"]
