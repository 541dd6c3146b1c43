"""No host synchronisation inside a block: during the denoising calls and Euler steps of the loop
nothing reads a tensor's value on the host (.item(), .tolist(), .cpu(), .numpy(), bool/int/float
of a tensor, a copy to the CPU). On CUDA each of these would stall the queue of kernels."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
from liveavatar.engines.diffusion.model.dit_config import DiTConfig
from liveavatar.engines.diffusion.runtime.caches import CacheForm
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, StepCaches, denoise_blocks

PLAN = LoopPlan(frames_per_clip=24, num_clips=1, latent_hw=(8, 8), sample_steps=2, sample_shift=3.0, seed=5)
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@pytest.mark.parametrize("form", [CacheForm(), CacheForm("fp8"), CacheForm("fp8", "host")], ids=lambda f: f.label)
def test_a_block_never_reads_a_tensor_on_the_host(form, monkeypatch):
    torch.manual_seed(0)
    dit = CausalS2VDiT(dataclasses.replace(DiTConfig.tiny(), text_len=16))
    c = dit.config
    text = dit.encode_text(torch.randn(5, c.text_dim))
    audio = torch.randn(1, 25, c.audio_dim, PLAN.num_clips * PLAN.frames_per_clip)
    ref, motion = torch.randn(1, 16, 1, 8, 8), torch.randn(1, 16, 19, 8, 8)
    caches = StepCaches.allocate(dit, PLAN, tuple(range(PLAN.sample_steps)), mode=form)
    reads: list[str] = []
    inside = [False]

    def counting(name, original):
        def wrapper(self, *args, **kwargs):
            if inside[0]:
                reads.append(name)
            return original(self, *args, **kwargs)

        return wrapper

    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    original_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        # an explicit copy to the host (on CUDA a sync); `.to(model.device)` is not one, though on
        # this CPU-only test machine that device is the CPU too
        target = kwargs.get("device", args[0] if args else None)
        if inside[0] and target == "cpu":
            reads.append("to(cpu)")
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    denoise = dit.denoise_block

    def counted_denoise(*args, **kwargs):
        inside[0] = True
        try:
            return denoise(*args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(dit, "denoise_block", counted_denoise)
    blocks = list(denoise_blocks(dit, text, audio, ref, motion, PLAN, caches=caches))
    assert len(blocks) == 2 and not inside[0]
    assert reads == [], f"host reads inside a block: {sorted(set(reads))}"
    # the counter does see a read when there is one
    inside[0] = True
    torch.ones(1).item()
    inside[0] = False
    assert reads == ["item"]
