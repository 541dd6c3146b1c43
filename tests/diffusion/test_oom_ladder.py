"""The out-of-memory ladder on the CPU: an injected torch.OutOfMemoryError at a chosen DiT call or
decode pass; the run completes from the last block boundary and the frames equal an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveavatar.config import GenerateConfig
from liveavatar.engines.base import Inputs
from liveavatar.engines.diffusion.engine import DiffusionEngine
from liveavatar.engines.diffusion.loading.layout import resolve_layout
from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
from liveavatar.engines.diffusion.runtime.caches import CacheForm
from liveavatar.planning import make_plan
from liveavatar.planning.fit import unplanned
from liveavatar.planning.memory import MODES, Mode
from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

# each run crosses clip 1 (its sink re-prefill re-encodes clip 0's frames with the VAE: slow on a CPU)
pytestmark = pytest.mark.slow

HOST = Mode("KV in host memory (test rung)", kv=CacheForm("model", "host"))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("release"))


def new_engine(release) -> DiffusionEngine:
    ckpt, lora = release
    config = GenerateConfig(image=Path("x"), audio=Path("y"), ckpt_dir=ckpt, lora_path_dmd=lora).resolve()
    return DiffusionEngine.from_config(config, resolve_layout(ckpt, lora), unplanned())


@pytest.fixture(scope="module")
def engine(release):
    return new_engine(release)


@pytest.fixture
def inject_oom(monkeypatch):
    """Make the n-th call of a method raise torch.OutOfMemoryError (once, or from then on)."""

    def arm(owner, name: str, at: int, always: bool = False) -> dict:
        real = getattr(owner, name)
        seen = {"calls": 0, "raised": 0}

        def wrapper(*args, **kwargs):
            seen["calls"] += 1
            if seen["calls"] == at or (always and seen["calls"] >= at):
                seen["raised"] += 1
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)
        return seen

    return arm


INPUTS = Inputs(
    prompt="a person talking",
    image=np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8),
    audio=(0.3 * np.sin(2 * np.pi * 180 * np.arange(19200) / 16000)).astype(np.float32),
    sample_rate=16000,
    image_path=Path("x.png"),
    audio_path=Path("y.wav"),
)


def generate(engine, notes=None, **kw):
    config = GenerateConfig(
        image=Path("x"), audio=Path("y"), prompt=INPUTS.prompt, size="128*128", infer_frames=24, sample_steps=2, **kw
    ).resolve()
    plan = make_plan(config, INPUTS, "diffusion")
    return np.concatenate(list(engine.generate(INPUTS, plan, (notes if notes is not None else []).append))), plan


@pytest.fixture(scope="module")
def uninterrupted(engine):
    return generate(engine)[0]


def test_oom_in_a_dit_call_continues_exactly_from_the_block_boundary(engine, uninterrupted, inject_oom):
    engine.mode, engine.later = MODES[0], [HOST]
    # 1.2 s at 24 frames per clip: blocks 0, 1 (clip 0) and 2 (clip 1); 2 steps per block, so
    # call 6 is the last step of block 2, after the sink's re-prefill for clip 1
    seen = inject_oom(engine.models.dit, "denoise_block", at=6)
    notes: list[str] = []
    frames, plan = generate(engine, notes)
    assert seen["raised"] == 1
    assert frames.shape == uninterrupted.shape == (plan.num_frames, 128, 128, 3)
    assert np.array_equal(frames, uninterrupted)
    ladder = [n for n in notes if "out of GPU memory" in n]
    assert len(ladder) == 1 and "block 2" in ladder[0] and HOST.name in ladder[0]


def test_oom_in_a_decode_pass_restores_the_decoder(engine, uninterrupted, inject_oom, monkeypatch):
    from liveavatar.engines.diffusion.vae import vae

    engine.mode, engine.later = MODES[0], [HOST]
    # pass 1 primes the decoder with the reference; pass 3 decodes block 1
    seen = inject_oom(vae.StreamingDecoder, "decode_next", at=3)
    frames, _ = generate(engine)
    assert seen["raised"] == 1 and np.array_equal(frames, uninterrupted)


def test_default_ladder_takes_fp8_weights_then_stays_within_the_fp8_budget(release, uninterrupted, inject_oom):
    fresh = new_engine(release)  # the rung quantises the DiT in place
    assert fresh.mode.name == "bf16 resident" and fresh.later[0].name == "fp8 weights"
    inject_oom(fresh.models.dit, "denoise_block", at=4)  # block 1
    notes: list[str] = []
    frames, _ = generate(fresh, notes)
    assert any('"fp8 weights"' in n and "DiT linears now fp8" in n for n in notes)
    assert frames.shape == uninterrupted.shape
    first = 12  # block 0's frames (3 latents x 4), decoded before the failure, are untouched
    assert np.array_equal(frames[:first], uninterrupted[:first])
    diff = np.abs(frames.astype(int) - uninterrupted.astype(int))
    assert diff.mean() < 8, diff.mean()  # fp8 linears on random tiny weights: a few uint8 levels


def test_every_rung_failing_keeps_the_partial_video_and_names_the_command(
    release, tmp_path, inject_oom, portrait_path, capsys
):
    import soundfile as sf

    from liveavatar.cli import main

    ckpt, lora = release
    audio = tmp_path / "a.wav"
    sf.write(str(audio), INPUTS.audio, 16000, subtype="PCM_16")
    out = tmp_path / "v.mp4"
    inject_oom(CausalS2VDiT, "denoise_block", at=4, always=True)
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
            "128*128",
            "--infer_frames",
            "24",
            "--sample_steps",
            "2",
            "--save_file",
            str(out),
            "--skip_checks",
        ]
    )
    assert code == 2
    assert not out.exists() and out.with_suffix(".partial.mp4").exists()
    err = capsys.readouterr().err
    assert err.count("out of GPU memory at block") == len(MODES) - 1 + 1  # every rung's note, then the error
    assert "liveavatar generate --image" in err and "--size" in err and "--overwrite" in err
