"""The guard: upstream's own generation loop (upstream-loop reference) replayed through our loop,
caches and streaming VAE decoder must keep matching it (rule and environment: parity_loop.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
REF = REPO.parent / "shared/reference/upstream-loop"
needs_ref = pytest.mark.skipif(
    not (REF / "loop_inputs.json").is_file(), reason=f"upstream-loop reference folder not found at {REF}"
)


@needs_ref
def test_loop_replay_matches_upstream_in_the_reference_kernel_environment():
    # its own process: the ISA caps only act when set before torch loads (the tool re-runs itself so)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "liveavatar.tools.parity", str(REF)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "kernel environment: ONEDNN_MAX_CPU_ISA=AVX2" in out and "2 threads" in out
    assert "our draw (seed 420 + 1) equals the stored noise" in out
    assert "rolling: 16 denoise calls and 2 prefills in upstream's order, relative_dist draws equal" in out
    assert "static: 16 denoise calls and 1 prefills" in out
    for variant, prefills in (("rolling", 4), ("static", 2)):
        for numerics in ("raw", "gpuln"):
            for family, n in (("flow_pred", 16), ("latent", 4), ("ring_k", 16), ("cond_k", prefills)):
                assert f"{variant}/{numerics} {family} x{n}:" in out
    assert all(f"vae {k}:" in out for k in ("encode", "decode_full", "stream.0", "stream.3"))
    assert "FAIL" not in out and out.rstrip().endswith("PASS")


@pytest.fixture(scope="module")
def reference():
    from liveavatar.tools.parity_loop import build_tiny_dit, load_tensors

    spec = json.loads((REF / "loop_inputs.json").read_text())
    info = json.loads((REF / "run_info.json").read_text())
    dit = build_tiny_dit(info["tiny_config"], REF / "tiny_dit.safetensors", spec["loop"]["motion_frames"])
    return dit, spec, load_tensors(REF / "loop_inputs.safetensors")


@needs_ref
def test_the_wrong_sink_policy_is_caught_from_clip_1_on(reference):
    """Static replay against the rolling reference: clip 0 agrees, clip 1 is far outside any rule."""
    from liveavatar.tools.parity_loop import PORTABLE, load_tensors, replay_loop

    dit, spec, inputs = reference
    ours, recorder = replay_loop(dit, inputs, spec["loop"], rolling=False)
    want = load_tensors(REF / spec["variants"]["rolling"]["outputs"]["gpuln"])
    assert len(recorder.prefills) == 1
    for key in ("flow_pred.c0.b0.s0", "latent.c0.b0", "ring_k.c0.s3.l1"):
        assert PORTABLE.measure(ours[key], want[key])[2], key
    for key in ("flow_pred.c1.b0.s0", "latent.c1.b1", "ring_k.c1.s2.l1"):
        worst, _, ok = PORTABLE.measure(ours[key], want[key])
        assert not ok and worst > 1e-2, (key, worst)


def test_the_rule_counts_the_share_and_the_maximum():
    import torch

    from liveavatar.tools.parity_loop import Rule

    rule = Rule(max_abs=5e-4, share_within=1e-5, min_share=0.97)
    want = torch.zeros(100)
    assert rule.measure(want.clone(), want) == (0.0, 1.0, True)
    few = want.clone()
    few[:3] = 4e-4  # 97 % exact, the rest under the maximum
    assert rule.measure(few, want)[2]
    many = want.clone()
    many[:4] = 4e-4  # 96 % within 1e-5
    assert not rule.measure(many, want)[2]
    spike = want.clone()
    spike[0] = 6e-4
    assert not rule.measure(spike, want)[2]
    assert not rule.measure(torch.zeros(99), want)[2]  # a shape change never passes
