"""The one block loop's seams: step groups (pipeline stages), continuing from a snapshot, sink policy."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, StepCaches, denoise_blocks, split_steps
from support.tiny_models import tiny_loop_setup

PLAN = LoopPlan(frames_per_clip=24, num_clips=3, latent_hw=(8, 8), sample_steps=4, sample_shift=3.0, seed=3)


@pytest.fixture(scope="module")
def setup():
    return tiny_loop_setup(PLAN.num_clips * PLAN.frames_per_clip)


def run(setup, plan=PLAN, **kw):
    dit, text, audio, ref, motion = setup
    return [(b.task.index, b.latents) for b in denoise_blocks(dit, text, audio, ref, motion, plan, **kw)]


def test_split_steps_contiguous_and_uneven():
    assert [s.steps for s in split_steps(4, 2)] == [(0, 1), (2, 3)]
    assert [s.steps for s in split_steps(5, 4)] == [(0, 1), (2,), (3,), (4,)]
    assert [s.steps for s in split_steps(4, 1)] == [(0, 1, 2, 3)]
    with pytest.raises(ValueError):
        split_steps(3, 4)


class QueueLink:
    """Stages run one after another in one process: each block's latents wait in a list."""

    def __init__(self, inbox, outbox, reference):
        self.inbox, self.outbox, self.reference = inbox, outbox, reference

    def receive(self, task, like):
        index, x = self.inbox.pop(0)
        assert index == task.index
        return x

    def send(self, task, latents):
        self.outbox.append((task.index, latents))

    def share_reference(self, reference, like):
        return reference if reference is not None else self.reference


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_stages_in_sequence_equal_one_worker(setup, workers):
    whole = run(setup)
    stages = split_steps(PLAN.sample_steps, workers)
    passed: list = []
    # the reference a non-last stage needs at clip 1 is the first block's clean latent
    reference = whole[0][1][:, :, :1]
    for stage in stages:
        out: list = []
        link = QueueLink(passed, out, reference)
        produced = run(setup, stage=stage, link=link)
        if stage.last:
            passed = produced
        else:
            assert produced == []
            passed = out
    assert [i for i, _ in passed] == [i for i, _ in whole]
    for (_, a), (_, b) in zip(passed, whole):
        assert torch.equal(a, b)


@pytest.mark.parametrize("rolling", [True, False])
@pytest.mark.parametrize("stop_after", [1, 3, 4])  # inside clip 0, at the clip-1 boundary, inside clip 1
def test_continuing_from_a_snapshot_equals_the_uninterrupted_loop(setup, rolling, stop_after):
    plan = dataclasses.replace(PLAN, rolling_sink=rolling)
    dit, text, audio, ref, motion = setup
    whole = run(setup, plan)
    state = LoopState.start(plan.seed)
    caches = StepCaches.allocate(dit, plan, tuple(range(plan.sample_steps)))
    first = []
    for block in denoise_blocks(dit, text, audio, ref, motion, plan, caches=caches, state=state):
        first.append((block.task.index, block.latents))
        if len(first) == stop_after:
            break
    snap = state.snapshot()
    rest = run(setup, plan, caches=caches, state=snap)
    combined = first + rest
    assert [i for i, _ in combined] == [i for i, _ in whole]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(combined, whole))


def test_rolling_and_static_sink_differ_only_from_clip_1(setup):
    rolling = run(setup, dataclasses.replace(PLAN, rolling_sink=True))
    static = run(setup, dataclasses.replace(PLAN, rolling_sink=False))
    per_clip = PLAN.latents_per_clip // 3
    for (i, a), (_, b) in zip(rolling, static):
        assert torch.equal(a, b) == (i < per_clip)
