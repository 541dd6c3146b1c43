"""Decode off the critical path (runtime/overlap.py): the block loop one block ahead of the decode in
a worker thread gives the same frames as in order, never runs further ahead, stops with its
consumer, and re-raises the loop's errors at their block."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from liveavatar.config import GenerateConfig
from liveavatar.engines.base import Inputs
from liveavatar.engines.diffusion.engine import DiffusionEngine
from liveavatar.engines.diffusion.loading.layout import resolve_layout
from liveavatar.engines.diffusion.runtime.overlap import AheadOfConsumer, InOrder
from liveavatar.planning import make_plan
from liveavatar.planning.fit import unplanned
from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint


def logged_items(n: int, log: list, fail_at: int | None = None):
    for i in range(n):
        log.append(("start", i))
        time.sleep(0.005)
        if i == fail_at:
            raise RuntimeError(f"block {i} failed")
        yield i


def test_one_block_ahead_never_more_and_states_travel_with_blocks():
    log: list = []
    counter = iter(range(100))
    runner = AheadOfConsumer(logged_items(6, log), lambda: next(counter))
    seen = []
    for item, state in runner:
        log.append(("consume", item))
        time.sleep(0.02)  # a slow consumer: the worker must wait, not run on
        seen.append((item, state))
    assert seen == [(i, i) for i in range(6)]  # in order; each block's own state snapshot
    for k in range(6):  # block k+1 may start once block k is taken, block k+2 only after k+1 is taken
        if k + 2 < 6:
            assert log.index(("start", k + 2)) > log.index(("consume", k + 1))
    assert any(log.index(("start", k + 1)) < log.index(("consume", k + 1)) for k in range(5))  # it did overlap


def test_errors_arrive_at_their_block_and_closing_stops_the_worker():
    runner = AheadOfConsumer(logged_items(5, [], fail_at=3), lambda: None)
    got = []
    with pytest.raises(RuntimeError, match="block 3"):
        for item, _ in runner:
            got.append(item)
    assert got == [0, 1, 2]
    before = threading.active_count()
    runner = AheadOfConsumer(logged_items(50, []), lambda: None)
    it = iter(runner)
    next(it)
    it.close()
    assert not runner._thread.is_alive() and threading.active_count() <= before


def test_caught_up_waits_for_the_consumer():
    done: list = []

    def items():
        yield 0
        yield 1
        runner.caught_up()  # the clip-1 sink reads every consumed block's output
        assert done == [0, 1]
        yield 2

    runner = AheadOfConsumer(items(), lambda: None)
    for item, _ in runner:
        time.sleep(0.02)
        done.append(item)
    assert done == [0, 1, 2]
    assert [i for i, _ in InOrder(iter([0, 1]), lambda: None)] == [0, 1]


@pytest.mark.slow  # two 2-clip tiny-engine runs
def test_engine_frames_identical_with_and_without_overlap(tmp_path):
    ckpt, lora = write_tiny_checkpoint(tmp_path)
    engine = DiffusionEngine.from_config(
        GenerateConfig(image=Path("x"), audio=Path("y"), ckpt_dir=ckpt, lora_path_dmd=lora).resolve(),
        resolve_layout(ckpt, lora),
        unplanned(),
    )
    t = np.arange(int(1.5 * 16000)) / 16000
    inputs = Inputs(
        prompt="a person talking",
        image=np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8),
        audio=(0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32),
        sample_rate=16000,
        image_path=Path("x.png"),
        audio_path=Path("y.wav"),
    )
    config = GenerateConfig(
        image=Path("x"), audio=Path("y"), prompt=inputs.prompt, size="128*128", infer_frames=24
    ).resolve()
    plan = make_plan(config, inputs, "diffusion")
    assert plan.num_clips >= 2 and plan.enable_online_decode  # the rolling sink waits for clip 0's frames
    videos = {}
    for overlap in (False, True):
        engine.overlap_decode = overlap
        videos[overlap] = [f.copy() for f in engine.generate(inputs, plan, lambda line: None)]
    assert len(videos[True]) == len(videos[False]) and all(
        np.array_equal(a, b) for a, b in zip(videos[True], videos[False])
    )


def test_overlap_only_where_the_decode_fits_beside_the_dit():
    """Side by side the smaller of the DiT's activations and the decode's working set adds to the
    loop's planned peak: on with that room left (80 GB card), off in a budget planned without it."""
    import dataclasses

    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.planning.fit import overlap_fits
    from liveavatar.planning.memory import GIB, MARGIN, Workload, choose

    work = Workload(DiTConfig.wan_s2v_14b(), 384, 704, 48, 4, num_frames=480)
    roomy = choose(work, 80 * GIB, fp8_weights=True)
    assert overlap_fits(roomy) and overlap_fits(None)
    est = roomy.estimate
    just_the_loop = dataclasses.replace(roomy, budget=int(est.phases["loop"] / (1 - MARGIN)) + 1)
    assert not overlap_fits(just_the_loop)
    extra = min(est.components["dit_activations"], est.components["vae_decode"])
    assert overlap_fits(dataclasses.replace(just_the_loop, budget=just_the_loop.budget + int(extra / (1 - MARGIN)) + 1))
