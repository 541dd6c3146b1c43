"""A DiT worker of a multi-GPU run that runs out of memory steps down alone (runtime/stage.py), in
one process on the CPU: an injected torch.OutOfMemoryError in a middle stage; its output equals the
uninterrupted stage's, and without a rung left it stops with one error naming it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.engines.diffusion.runtime.caches import CacheForm
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, denoise_blocks, split_steps
from liveavatar.engines.diffusion.runtime.stage import run_stage
from liveavatar.errors import UserError
from liveavatar.planning.memory import BF16_RESIDENT, Mode

PLAN = LoopPlan(frames_per_clip=24, num_clips=2, latent_hw=(8, 8), sample_steps=4, sample_shift=3.0, seed=3)
HOST = Mode("KV in host memory (test rung)", kv=CacheForm("model", "host"))  # exact, unlike fp8


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    config = dataclasses.replace(DiTConfig.tiny(), text_len=16)
    dit = CausalS2VDiT(config)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in dit.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / max(1, p[0].numel()) ** 0.5 if p.ndim >= 2
                    else 0.1 * torch.randn(p.shape, generator=gen))
    text = dit.encode_text(torch.randn(5, config.text_dim, generator=gen))
    job = {"audio": torch.randn(1, 25, config.audio_dim, PLAN.num_clips * PLAN.frames_per_clip, generator=gen),
           "ref": torch.randn(1, 16, 1, 8, 8, generator=gen), "motion": torch.randn(1, 16, 19, 8, 8, generator=gen)}
    return dit, text, job


class ReplayLink:
    """The previous stage's blocks by index (asked again after a step-down, as DistLink answers)."""

    def __init__(self, inbox: dict, reference):
        self.inbox, self.reference, self.out, self.sent_through = inbox, reference, [], -1

    def receive(self, task, like):
        return self.inbox[task.index]

    def send(self, task, latents):
        self.out.append((task.index, latents))
        self.sent_through = task.index

    def share_reference(self, reference, like):
        return self.reference

    def motion(self, compute, like):
        return lambda: like


def _middle_stage_input(setup):
    dit, text, job = setup
    first, middle = split_steps(4, 3)[:2]
    whole = list(denoise_blocks(dit, text, job["audio"], job["ref"], job["motion"], PLAN))
    reference = whole[0].latents[:, :, :1]
    feed = ReplayLink({}, reference)
    list(denoise_blocks(dit, text, job["audio"], job["ref"], job["motion"], PLAN, stage=first, link=feed))
    return middle, dict(feed.out), reference


def _oom_at(monkeypatch, dit, at: int, always: bool = False) -> dict:
    real, seen = dit.denoise_block, {"calls": 0}

    def wrapper(*args, **kwargs):
        seen["calls"] += 1
        if seen["calls"] == at or (always and seen["calls"] >= at):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(dit, "denoise_block", wrapper)
    return seen


@pytest.mark.slow  # a tiny loop of 4 steps x 4 blocks, twice: ~10-30 s on 2 shared cores
def test_a_worker_steps_down_alone_and_its_blocks_are_unchanged(setup, monkeypatch):
    dit, text, job = setup
    stage, inbox, reference = _middle_stage_input(setup)
    plain = ReplayLink(inbox, reference)
    run_stage(dit, text, job, PLAN, stage, plain, BF16_RESIDENT, (), print)
    _oom_at(monkeypatch, dit, at=3)  # block 2: the first of clip 1, just after its sink re-prefill
    notes: list[str] = []
    link = ReplayLink(inbox, reference)
    run_stage(dit, text, job, PLAN, stage, link, BF16_RESIDENT, (HOST,), notes.append, "worker 1 (DiT step 2)")
    assert [i for i, _ in link.out] == [i for i, _ in plain.out] == sorted(inbox)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(link.out, plain.out))
    assert len(notes) == 1 and "stepped down" in notes[0] and HOST.name in notes[0]


@pytest.mark.slow  # a tiny loop of 4 steps x 4 blocks, twice: ~10-30 s on 2 shared cores
def test_a_worker_without_a_rung_left_stops_naming_itself(setup, monkeypatch):
    dit, text, job = setup
    stage, inbox, reference = _middle_stage_input(setup)
    _oom_at(monkeypatch, dit, at=3, always=True)
    link = ReplayLink(inbox, reference)
    with pytest.raises(UserError) as err:
        run_stage(dit, text, job, PLAN, stage, link, BF16_RESIDENT, (HOST,), lambda s: None, "worker 1 (DiT step 2)")
    line = err.value.one_line()
    assert "worker 1 (DiT step 2) ran out of GPU memory at block 2" in line and "finished part is kept" in line
    assert [i for i, _ in link.out] == [0, 1]  # what it finished went on


def test_the_dist_link_answers_a_repeated_block_without_asking_its_neighbours(monkeypatch):
    from liveavatar.engines.diffusion.runtime import dist_link

    calls = {"recv": 0, "broadcast": 0}
    fake = SimpleNamespace(recv=lambda buf, src: calls.__setitem__("recv", calls["recv"] + 1),
                           broadcast=lambda buf, src: calls.__setitem__("broadcast", calls["broadcast"] + 1))
    monkeypatch.setattr(dist_link, "dist", fake)
    link = dist_link.DistLink(1, 2, torch.device("cpu"))
    task = SimpleNamespace(index=4)
    like = torch.zeros(1, 16, 3, 8, 8)
    a, b = link.receive(task, like), link.receive(task, like)
    assert calls["recv"] == 1 and a is not None and torch.equal(a, b)
    link.receive(SimpleNamespace(index=5), like)
    assert calls["recv"] == 2
    motion = link.motion(None, torch.zeros(1, 16, 19, 8, 8))
    for _ in range(2):
        link.share_reference(None, like)
        motion()
    assert calls["broadcast"] == 2  # the reference once, the motion once
