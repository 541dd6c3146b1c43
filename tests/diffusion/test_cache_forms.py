"""The step caches' storage forms behind one interface: host-streamed == resident exactly; fp8 KV
within its stated error budget; converting a form keeps the contents."""

from __future__ import annotations

import pytest
import torch

from liveavatar.engines.diffusion.model.attention import sdpa
from liveavatar.engines.diffusion.runtime.caches import CacheForm, KVStore, dequantize_rows, quantize_rows
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, StepCaches, denoise_blocks
from support.tiny_loop import tiny_loop_inputs

PLAN = LoopPlan(frames_per_clip=24, num_clips=2, latent_hw=(8, 8), sample_steps=3, sample_shift=3.0, seed=5)
HOST = CacheForm("model", "host")
FP8 = CacheForm("fp8", "resident")
FP8_HOST = CacheForm("fp8", "host")
# fp8 KV error budget (e4m3: 3 mantissa bits, one fp32 scale per token and head):
KV_ELEMENT_BUDGET = 0.03  # relative RMS error of a stored K or V (measured 0.026)
ATTENTION_BUDGET = 0.05  # relative error of an attention output over fp8 vs bf16 K/V (measured 0.037)
LOOP_BUDGET = 0.005  # relative error of the tiny model's clean latents after a 2-clip run (measured 4.2e-4)


@pytest.fixture(scope="module")
def setup():
    return tiny_loop_inputs(PLAN)


def run(setup, form=None, caches=None, state=None, plan=PLAN):
    dit, text, audio, ref, motion = setup
    caches = caches or StepCaches.allocate(dit, plan, tuple(range(plan.sample_steps)), mode=form)
    out = torch.cat(
        [b.latents for b in denoise_blocks(dit, text, audio, ref, motion, plan, caches=caches, state=state)], dim=2
    )
    return out, caches


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_host_streamed_equals_resident_bit_for_bit(setup):
    resident, rc = run(setup, CacheForm())
    streamed, hc = run(setup, HOST)
    assert torch.equal(resident, streamed)
    for step in rc.by_step:  # the written-back host rings hold exactly what the resident ones hold
        assert torch.equal(rc.by_step[step].k, hc.by_step[step].k)
    # on the device the host rings keep only two one-layer slots, shared by every step
    layers = setup[0].config.num_layers
    assert hc.device_bytes() - hc.sink.store.nbytes() == 2 * rc.by_step[0].store.nbytes() // layers


def test_fp8_streamed_equals_fp8_resident(setup):
    assert torch.equal(run(setup, FP8)[0], run(setup, FP8_HOST)[0])


def test_fp8_kv_tiny_loop_within_budget(setup):
    exact, _ = run(setup, CacheForm())
    fp8, caches = run(setup, FP8)
    assert caches.by_step[0].store.planes["k"].dtype == torch.float8_e4m3fn
    err = rel(fp8, exact)
    assert 0 < err < LOOP_BUDGET, err


def test_fp8_kv_at_14b_width_within_budget():
    """Random K/V at the 14B head layout (40 heads x 128): stored values and one attention output."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, n, 40, 128, generator=gen).to(torch.bfloat16) for n in (64, 1024, 1024))
    kq, vq = (dequantize_rows(*quantize_rows(x), torch.bfloat16) for x in (k, v))
    assert rel(kq, k) < KV_ELEMENT_BUDGET and rel(vq, v) < KV_ELEMENT_BUDGET
    exact = sdpa(q, k, v)
    assert rel(sdpa(q, kq, vq), exact) < ATTENTION_BUDGET


def test_conversion_keeps_contents_and_the_loop_continues_exactly(setup):
    """Half the video resident, then the caches move to host memory: the second half is unchanged."""
    dit = setup[0]
    whole, _ = run(setup, CacheForm())
    state = LoopState.start(PLAN.seed)
    caches = StepCaches.allocate(dit, PLAN, tuple(range(PLAN.sample_steps)))
    dit_, text, audio, ref, motion = setup
    first = []
    for block in denoise_blocks(dit, text, audio, ref, motion, PLAN, caches=caches, state=state):
        first.append(block.latents)
        if block.task.index == 2:  # clip 1 has begun (2 blocks per clip)
            break
    moved = caches.converted(HOST)
    assert moved.sink.length == caches.sink.length and moved.form == HOST
    rest, _ = run(setup, caches=moved, state=state.snapshot())
    assert torch.equal(torch.cat(first + [rest], dim=2), whole)


def test_store_round_trip_between_every_form():
    gen = torch.Generator().manual_seed(2)
    store = KVStore.allocate(2, 1, 12, 2, 8, torch.float32, "cpu")
    k, v = torch.randn(1, 12, 2, 8, generator=gen), torch.randn(1, 12, 2, 8, generator=gen)
    for layer in range(2):
        store.write(layer, 0, k * (layer + 1), v)
    host = store.converted(HOST)
    assert all(torch.equal(a, b) for a, b in zip(host.read(1, 12), store.read(1, 12)))
    back = host.converted(FP8).converted(CacheForm())
    assert rel(back.read(1, 12)[0], store.read(1, 12)[0]) < KV_ELEMENT_BUDGET
