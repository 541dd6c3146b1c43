"""K DiT worker processes over gloo (timestep-forcing pipeline parallelism) on the CPU.

Spawning a worker costs seconds (a fresh interpreter imports torch and loads the DiT), so the
cases are combined: few runs, each checking several things.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from liveavatar.cli import main
from liveavatar.config import GenerateConfig
from liveavatar.engines.diffusion.engine import DiffusionEngine
from liveavatar.engines.diffusion.loading.layout import resolve_layout
from liveavatar.planning import make_plan
from liveavatar.planning.fit import unplanned
from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

SIZE = "64*64"


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("release"))


def _inputs(seconds: float):
    from liveavatar.engines.base import Inputs

    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    return Inputs(
        prompt="a person talking",
        image=image,
        audio=audio,
        sample_rate=16000,
        image_path=Path("x.png"),
        audio_path=Path("y.wav"),
    )


def _frames(release, workers: int, notes: list | None = None, **kw) -> np.ndarray:
    ckpt, lora = release
    config = GenerateConfig(
        image=Path("x"),
        audio=Path("y"),
        prompt="a person talking",
        size=SIZE,
        infer_frames=12,
        ckpt_dir=ckpt,
        lora_path_dmd=lora,
        num_gpus_dit=workers,
        **kw,
    ).resolve()
    engine = DiffusionEngine.from_config(config, resolve_layout(ckpt, lora), unplanned())
    inputs = _inputs(1.0)
    plan = make_plan(config, inputs, "diffusion")
    assert plan.num_clips >= 2  # the rolling sink's clip-1 re-prefill is crossed
    say = notes.append if notes is not None else (lambda s: None)
    return np.concatenate(list(engine.generate(inputs, plan, say)))


def _write_audio(path: Path, seconds: float) -> Path:
    import soundfile as sf

    sf.write(str(path), _inputs(seconds).audio, 16000, subtype="PCM_16")
    return path


def _hash(frames: np.ndarray) -> str:
    return hashlib.sha256(frames.tobytes()).hexdigest()


@pytest.mark.slow
def test_k_workers_give_the_single_process_frames(tiny_release):
    """K = 2 (last rank decodes), 3 (uneven 2+1+1, decode worker, static sink), 5 (6 steps: 2+1+1+1+1)
    and 4 + a decode worker (the guide's five-card layout: one step per DiT worker)."""
    cases = [
        (2, dict(enable_vae_parallel=False)),
        (3, dict(enable_vae_parallel=True, enable_online_decode=False)),
        (5, dict(enable_vae_parallel=False, sample_steps=6)),
        (4, dict(enable_vae_parallel=True)),
    ]
    for workers, kw in cases:
        single = _frames(tiny_release, 1, **kw)
        notes: list[str] = []
        multi = _frames(tiny_release, workers, notes, **kw)
        assert multi.shape == single.shape
        assert _hash(multi) == _hash(single), (workers, kw)
        assert any(n.startswith("note: no CUDA device") for n in notes)
        worker_lines = [n for n in notes if n.startswith("note: worker")]
        assert len(worker_lines) == workers and "step caches" in worker_lines[0]
    # the rolling sink really changes clip 1 on (so the broadcasts at clip 1 were exercised)
    assert _hash(_frames(tiny_release, 1, enable_online_decode=False)) != _hash(_frames(tiny_release, 1))


def _mp4_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.slow
def test_cli_two_workers_and_decode_worker_equal_one_process(tiny_release, tmp_path, portrait_path, capsys):
    ckpt, lora = tiny_release
    audio = _write_audio(tmp_path / "a.wav", 1.0)
    base = [
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
        str(audio),
        "--size",
        SIZE,
        "--infer_frames",
        "12",
        "--skip_checks",
    ]
    assert main([*base, "--save_file", str(tmp_path / "one.mp4")]) == 0
    capsys.readouterr()
    assert main([*base, "--save_file", str(tmp_path / "two.mp4"), "--num_gpus_dit", "2", "--enable_vae_parallel"]) == 0
    err = capsys.readouterr().err
    assert "note: no CUDA device: 2 DiT workers + 1 decode worker run as CPU processes over gloo" in err
    assert np.array_equal(_mp4_frames(tmp_path / "one.mp4"), _mp4_frames(tmp_path / "two.mp4"))


def test_more_workers_than_steps_is_one_clear_error(tmp_path, portrait_path, speech_path, capsys):
    code = main(
        [
            "generate",
            "--engine",
            "diffusion",
            "--image",
            str(portrait_path),
            "--audio",
            str(speech_path),
            "--num_gpus_dit",
            "5",
            "--sample_steps",
            "4",
            "--save_file",
            str(tmp_path / "v.mp4"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "5 DiT workers cannot share 4 denoising steps" in err[0] and "--num_gpus_dit 4" in err[0]
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_killed_worker_ends_the_run_cleanly(tiny_release, tmp_path, portrait_path, capsys, monkeypatch):
    from liveavatar import pipeline
    from liveavatar.engines.diffusion.runtime import workers

    ckpt, lora = tiny_release
    audio = _write_audio(tmp_path / "a.wav", 3.0)
    out = tmp_path / "v.mp4"
    teams, killed, gone, watcher = [], [], [], []
    launch, write = workers.Team.launch.__func__, pipeline.VideoWriter.write

    def remember(cls, *args, **kwargs):
        teams.append(launch(cls, *args, **kwargs))
        return teams[-1]

    def write_then_kill(self, frames):
        write(self, frames)
        if not killed:  # the first frames are written: kill worker 1 (a DiT rank between two others)
            victim = teams[0].pids[1]
            os.kill(victim, signal.SIGKILL)
            killed.append(time.monotonic())
            watcher.append(threading.Thread(target=watch, args=(list(teams[0].pids.values()),), daemon=True))
            watcher[0].start()

    def watch(pids):  # when every worker process is gone
        while any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.05)
        gone.append(time.monotonic())

    monkeypatch.setattr(workers.Team, "launch", classmethod(remember))
    monkeypatch.setattr(pipeline.VideoWriter, "write", write_then_kill)
    pids = []
    monkeypatch.setattr(
        workers.Team, "_spawn", lambda self, real=workers.Team._spawn: (real(self), pids.extend(self.pids.values()))
    )
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
            str(audio),
            "--size",
            SIZE,
            "--infer_frames",
            "12",
            "--skip_checks",
            "--num_gpus_dit",
            "3",
            "--save_file",
            str(out),
        ]
    )
    took = time.monotonic() - killed[0]
    watcher[0].join(5)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, err
    assert "worker 1 (DiT step 2)" in errors[0] and "killed by signal SIGKILL" in errors[0], errors[0]
    assert gone and gone[0] - killed[0] < 10, "the other workers did not stop within seconds"
    assert took < 120, took  # this process stops at its next block boundary
    partial = tmp_path / "v.partial.mp4"
    assert partial.exists() and not out.exists()
    assert 0 < len(_mp4_frames(partial)) < 75
    assert len(pids) == 2 and not [p for p in pids if Path(f"/proc/{p}").exists()]  # none left running
