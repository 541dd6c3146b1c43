"""The stored-form attention kernel (model/fp8_attention.py) on the CPU under TRITON_INTERPRET=1:
per call against SDPA on the de-quantised K/V, and through the whole tiny loop in every cache form.

Budgets: one call, bf16 Q.K^T: rel L2 <= 2e-2 against SDPA over the same (de-quantised) keys; fp8
Q.K^T (off by default): <= 8e-2. Tiny loop: the kernel over fp8 rings against SDPA over the same
fp8 rings <= 1e-2, and against the reference path (model-dtype rings, SDPA) <= 5e-3 (the fp8 KV
form's own budget, tests/diffusion/test_cache_forms.py)."""

from __future__ import annotations

import os

import pytest
import torch

# before Triton is first imported: it reads the switch then (only Triton reads it; set for the session)
os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")

from liveavatar.engines.diffusion.model.attention import sdpa  # noqa: E402
from liveavatar.engines.diffusion.model.fp8_attention import StoredKV, stored_attention  # noqa: E402
from liveavatar.engines.diffusion.runtime.caches import CacheForm, dequantize_rows, quantize_rows  # noqa: E402
from liveavatar.engines.diffusion.runtime.loop import LoopPlan, StepCaches, denoise_blocks  # noqa: E402
from support.tiny_loop import tiny_loop_inputs  # noqa: E402

CALL_BUDGET = 2e-2
FP8_QK_BUDGET = 8e-2
LOOP_KERNEL_BUDGET = 1e-2
LOOP_BUDGET = 5e-3
PLAN = LoopPlan(frames_per_clip=24, num_clips=2, latent_hw=(8, 8), sample_steps=3, sample_shift=3.0, seed=5)
FORMS = {
    "model": CacheForm(),
    "model-host": CacheForm("model", "host"),
    "fp8": CacheForm("fp8"),
    "fp8-host": CacheForm("fp8", "host"),
}


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def stored(x: torch.Tensor, fp8: bool):
    return quantize_rows(x) if fp8 else (x, None)


def widened(x, scale):
    return x.float() if scale is None else dequantize_rows(x, scale, torch.float32)


@pytest.mark.parametrize(
    "n_q,heads,n_ring,n_sink,ring_fp8,sink_fp8",
    [
        (48, 2, 96, 40, True, True),  # a tiny-loop call
        (100, 3, 300, 70, True, False),  # ring fp8, sink K roped per call (bf16), lengths off the tiles
        (64, 2, 128, 0, True, True),  # no sink
        (70, 2, 150, 40, False, False),  # the model-dtype form through the same entry
    ],
)
def test_call_against_sdpa_on_the_stored_values(n_q, heads, n_ring, n_sink, ring_fp8, sink_fp8):
    gen = torch.Generator().manual_seed(n_q + n_ring)
    q, rk, rv, sk, sv = (
        torch.randn(1, n, heads, 128, generator=gen).to(torch.bfloat16) for n in (n_q, n_ring, n_ring, n_sink, n_sink)
    )
    ring = StoredKV(*stored(rk, ring_fp8), *stored(rv, ring_fp8))
    sink = StoredKV(sk, None, *stored(sv, sink_fp8)) if n_sink else None  # the sink's K is roped per call
    keys = [widened(ring.k, ring.k_scale)] + ([widened(sink.k, None)] if sink else [])
    values = [widened(ring.v, ring.v_scale)] + ([widened(sink.v, sink.v_scale)] if sink else [])
    want = sdpa(q.float(), torch.cat(keys, 1), torch.cat(values, 1))
    got = stored_attention(q, ring, sink, block_m=32, block_n=32)
    assert got.shape == want.shape and got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    assert rel(got, want) <= CALL_BUDGET
    fast = stored_attention(q, ring, sink, fp8_qk=True, block_m=32, block_n=32)
    assert rel(fast, want) <= FP8_QK_BUDGET


def test_the_sink_and_ring_merge_equals_one_concatenated_set():
    """Two sets through one online softmax == the same keys as one set (model dtype: exact up to fp32 sums)."""
    gen = torch.Generator().manual_seed(3)
    q, k1, v1, k2, v2 = (torch.randn(1, n, 2, 32, generator=gen) for n in (40, 50, 50, 30, 30))
    two = stored_attention(q, StoredKV(k1, None, v1, None), StoredKV(k2, None, v2, None), block_m=16, block_n=16)
    one = stored_attention(
        q, StoredKV(torch.cat([k1, k2], 1), None, torch.cat([v1, v2], 1), None), block_m=16, block_n=16
    )
    assert rel(two, one) < 1e-5 and rel(two, sdpa(q, torch.cat([k1, k2], 1), torch.cat([v1, v2], 1))) < 1e-5


@pytest.fixture(scope="module")
def setup():
    return tiny_loop_inputs(PLAN)


def run(setup, form, kernel):
    dit, text, audio, ref, motion = setup
    dit.accelerate(stored_attention=kernel)
    try:
        caches = StepCaches.allocate(dit, PLAN, tuple(range(PLAN.sample_steps)), mode=form)
        return torch.cat([b.latents for b in denoise_blocks(dit, text, audio, ref, motion, PLAN, caches=caches)], 2)
    finally:
        dit.accelerate()


@pytest.mark.slow  # ~25 s on two shared cores: five 2-clip loops through the interpreter
def test_tiny_loop_in_every_cache_form(setup):
    reference = run(setup, FORMS["model"], False)
    outs = {name: run(setup, form, True) for name, form in FORMS.items() if name != "model-host"}
    drift = {name: rel(out, reference) for name, out in outs.items()}
    versus_sdpa = rel(outs["fp8"], run(setup, FORMS["fp8"], False))
    print(
        f"tiny-loop drift of the kernel path vs model-dtype SDPA: {drift}; fp8 rings, kernel vs SDPA: {versus_sdpa:.2e}"
    )
    # model-dtype rings: the same function as SDPA; host-streamed fp8 rings: exactly the resident ones
    assert drift["model"] < 1e-4
    assert torch.equal(outs["fp8-host"], outs["fp8"]) and 0 < drift["fp8"] < LOOP_BUDGET
    assert versus_sdpa < LOOP_KERNEL_BUDGET


def test_the_cpu_default_keeps_sdpa(setup, monkeypatch):
    """Selection: the kernel only on CUDA with fp8 rings, so CPU numerics (and the parity guard) stay."""
    import liveavatar.engines.diffusion.model.dit as dit_module

    def refuse(*a, **k):
        raise AssertionError("the kernel ran on the CPU by default")

    monkeypatch.setattr(dit_module, "stored_attention", refuse)
    run(setup, FORMS["fp8"], None)
