"""The diffusion engine's live session on the tiny checkpoint: the same block loop fed block by block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liveavatar.config import GenerateConfig
from liveavatar.engines.diffusion.runtime.endless import MAX_CLIPS, EndlessPlan
from liveavatar.engines.diffusion.runtime.loop import LoopPlan

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("frames_per_clip", [48, 36])
def test_the_endless_schedule_is_the_loops_schedule_without_end(frames_per_clip):
    kw = {"frames_per_clip": frames_per_clip, "latent_hw": (8, 8), "sample_steps": 2, "sample_shift": 3.0, "seed": 1}
    finite = LoopPlan(num_clips=7, **kw).schedule()
    endless = EndlessPlan(num_clips=MAX_CLIPS, **kw).schedule()
    assert list(endless[: len(finite)]) == finite
    assert list(endless[5:][:4]) == finite[5:9]
    assert len(endless) == MAX_CLIPS * len(LoopPlan(num_clips=1, **kw).blocks())
    assert endless[10**9].clip == 10**9 // len(LoopPlan(num_clips=1, **kw).blocks())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    from liveavatar.tools.tiny_checkpoint import write_tiny_wav2vec2

    return write_tiny_wav2vec2(tmp_path_factory.mktemp("w2v"))


def test_sliding_window_features_stay_close_to_the_offline_ones(tiny_wav2vec2):
    import torch

    from liveavatar.engines.diffusion.encoders.audio_features import AudioFeatureEncoder
    from liveavatar.engines.diffusion.encoders.audio_window import (
        SlidingFeatures,
        frames_from_hidden,
        whole_track_states,
    )
    from liveavatar.media.audio import read_audio

    encoder = AudioFeatureEncoder.from_folder(tiny_wav2vec2, dtype=torch.float32)
    audio = read_audio(REPO / "samples" / "speech.wav")[: 3 * 16_000]
    n = 60
    offline = frames_from_hidden(whole_track_states(encoder, audio), 0, 0, n)  # the offline states, exact grid
    f = SlidingFeatures(encoder)
    padded = np.concatenate([audio, np.zeros(16_000, np.float32)])
    live = torch.cat(
        [f.feed(padded[s * 640 : (s + 12) * 640 + f.lookahead_samples], s, 12) for s in range(0, n, 12)], -1
    )
    assert live.shape == offline.shape
    rel = float((live - offline).norm() / offline.norm())
    assert rel < 0.25, rel  # benchmarks/RESULTS.md: the figure and how it falls with context and lookahead
    assert rel < 0.5 * float(
        (offline[..., 1:] - offline[..., :-1]).norm() / offline.norm()
    )  # well under a frame's change
    assert float(f[..., 48:60].sub(live[..., 48:]).abs().max()) == 0  # the loop reads the last block's columns
    with pytest.raises(IndexError):
        f[..., 36:48]
    assert len(f.past) <= 2 * 16_000


@pytest.mark.slow
def test_a_live_session_runs_the_block_loop_and_says_when_it_lags(tiny, monkeypatch):
    import itertools
    from types import SimpleNamespace

    from liveavatar.engines import session as session_module
    from liveavatar.engines.base import SessionInputs
    from liveavatar.engines.diffusion.engine import DiffusionEngine
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.live.session import session_plan
    from liveavatar.media.audio import read_audio
    from liveavatar.planning.fit import unplanned

    ckpt, lora = tiny
    config = GenerateConfig(
        image=Path("x"), audio=Path("y"), ckpt_dir=ckpt, lora_path_dmd=lora, size="64*64", prompt="a person talking"
    ).resolve()
    engine = DiffusionEngine.from_config(config, resolve_layout(ckpt, lora), unplanned())
    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    session = engine.open_session(
        SessionInputs("a person talking", image), session_plan(config, image, "diffusion"), lambda line: None
    )
    assert (session.block_frames, session.lookahead_ms) == (12, 320.0)
    speech = (read_audio(REPO / "samples" / "speech.wav")[:16_000] * 32767).astype(np.int16)
    session.push_audio(speech)
    session.end_of_speech()
    # the session's clock says each block took 1 s (a slow GPU's figure, whatever this machine's speed
    # is today): the test is about what the session says when it lags, not about this CPU
    ticks = itertools.count(step=1.0)
    monkeypatch.setattr(session_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    blocks = [session.next_block() for _ in range(5)]  # clip 1 starts at block 4: the sink rolls
    assert [b.start_frame for b in blocks] == [0, 12, 24, 36, 48]
    assert all(b.frames.shape == (12, 64, 64, 3) and b.frames.dtype == np.uint8 for b in blocks)
    assert np.std(np.concatenate([b.frames for b in blocks]).astype(np.float32)) > 1.0
    audio = np.concatenate([b.audio for b in blocks])
    np.testing.assert_array_equal(audio[: len(speech)], speech / np.float32(32768))
    assert [b.speaking for b in blocks] == [True, True, True, False, False]  # 1 s of speech, then listening
    events = session.poll_events()
    kinds = [e["type"] for e in events]
    assert [k for k in kinds if k != "lagging"] == ["session.started", "speech.started", "playback.finished"]
    lag = [e for e in events if e["type"] == "lagging"]
    assert lag and lag[0]["speed"] < 1 and lag[0]["source"] == "measured"
    assert "real time at 64*64" in lag[0]["offer"]["message"]
    session.close()


def test_rope_positions_past_the_table_are_the_tables_values():
    from liveavatar.engines.diffusion.model.rope import RopeTables

    small, big = RopeTables(24, 10, "cpu"), RopeTables(24, 100, "cpu")
    for start in (6, 10, 90):  # across the end of the small table, and far past it
        for a, b in zip(small.grid(start, 3, 2, 2), big.grid(start, 3, 2, 2)):
            assert a.shape == b.shape and bool((a == b).all())


def test_the_offer_names_what_keeps_up():
    from types import SimpleNamespace

    from liveavatar.engines.diffusion.live import DiffusionBlockMaker

    maker = DiffusionBlockMaker.__new__(DiffusionBlockMaker)
    maker.width, maker.height = 704, 384
    maker.plan = SimpleNamespace(sample_steps=4)
    offer = maker.keep_up_offer(0.96)  # half real time
    assert offer["sample_steps"] == 2 and offer["size"] == "448*256"
    assert "--size 448*256 or --sample_steps 2" in offer["message"]
    tiny = DiffusionBlockMaker.__new__(DiffusionBlockMaker)
    tiny.width, tiny.height, tiny.plan = 64, 64, SimpleNamespace(sample_steps=4)
    offer = tiny.keep_up_offer(7.0)
    assert offer["size"] is None and offer["sample_steps"] is None and "use a GPU" in offer["message"]
