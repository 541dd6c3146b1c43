"""The DiT's speed options (split sink attention, FP8 linears) compute what the reference path does."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")


def _rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def test_two_part_attention_matches_concatenated_keys():
    from liveavatar.engines.diffusion.model.attention import sdpa, sdpa_two

    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 7, 3, 16, generator=g)
    k1, v1 = torch.randn(2, 11, 3, 16, generator=g) * 2, torch.randn(2, 11, 3, 16, generator=g)
    k2, v2 = torch.randn(2, 5, 3, 16, generator=g), torch.randn(2, 5, 3, 16, generator=g)
    ref = sdpa(q, torch.cat([k1, k2], dim=1), torch.cat([v1, v2], dim=1))
    out = sdpa_two(q, k1, v1, k2, v2)
    assert out.shape == ref.shape == (2, 7, 48)
    assert (out - ref).abs().max().item() < 1e-5


def _tiny_streaming_run(model, split: bool):
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig  # noqa: F401
    from liveavatar.engines.diffusion.runtime.caches import new_caches

    model.accelerate(split_sink=split)
    c = model.config
    g = torch.Generator().manual_seed(3)
    h, w, frames = 8, 16, 3
    p_tok = (h // 2) * (w // 2)
    sink, caches = new_caches(model, 1, ring_tokens=2 * frames * p_tok, sink_tokens=128)
    text = model.encode_text(torch.randn(5, c.text_dim, generator=g))
    model.prefill_sink(sink, torch.randn(1, 16, 1, h, w, generator=g), torch.randn(1, 16, 19, h, w, generator=g), text)
    rng = random.Random(0)
    outs = []
    for b in range(3):  # the third block wraps the ring
        x = torch.randn(1, 16, frames, h, w, generator=g)
        audio = torch.randn(1, 25, c.audio_dim, 4 * frames, generator=g)
        outs.append(
            model.denoise_block(caches[0], x, 500.0, text, audio, None, current_start=b * frames * p_tok, rng=rng)
        )
    return torch.stack(outs)


def test_split_sink_denoise_matches_reference_path():
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    torch.manual_seed(0)
    model = CausalS2VDiT(DiTConfig.tiny())
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.ones_like(p) if "norm" in name else torch.randn_like(p) * 0.1)
    ref = _tiny_streaming_run(model, split=False)
    out = _tiny_streaming_run(model, split=True)
    assert torch.isfinite(ref).all()
    assert (out - ref).abs().max().item() < 1e-4 * ref.abs().max().item() + 1e-5


def test_fp8_linear_error_on_gaussian_data():
    from liveavatar.engines.diffusion.model.fp8 import FP8Linear

    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(256, 128).to(torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(128, 256, generator=g) * 0.02)
        lin.bias.copy_(torch.randn(128, generator=g) * 0.01)
    x = torch.randn(4, 64, 256, generator=g).to(torch.bfloat16)
    ref = lin(x)
    q = FP8Linear(lin)
    out = q(x)
    assert out.dtype == torch.bfloat16 and out.shape == ref.shape
    err = _rel(out, ref)
    assert 0.01 < err < 0.06, err  # e4m3 has 3 mantissa bits: a few percent, never zero
    assert q.weight_fp8.dtype == torch.float8_e4m3fn
    # the stored scale is 1/s with s = min(448 / max|W|, 448)
    s = min(448.0 / lin.weight.float().abs().max().item(), 448.0)
    assert abs(q.weight_scale_inv.item() - 1.0 / s) < 1e-6 / s
    assert _rel(q.dequantized_weight(), lin.weight) < 0.05


def test_fp8_weight_scale_is_capped_for_tiny_weights():
    from liveavatar.engines.diffusion.model.fp8 import FP8Linear

    lin = torch.nn.Linear(32, 16)
    with torch.no_grad():
        lin.weight.fill_(1e-4)
    assert abs(FP8Linear(lin).weight_scale_inv.item() - 1 / 448) < 1e-9


def test_fp8_quantizes_the_14b_model_except_upstreams_exclusions():
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig
    from liveavatar.engines.diffusion.model.fp8 import EXCLUDED, FP8Linear, quantize_linears_fp8

    model = CausalS2VDiT(DiTConfig.wan_s2v_14b(), dtype=torch.bfloat16, device="meta")
    linears = {n for n, m in model.named_modules() if type(m) is torch.nn.Linear}
    kept = {n for n in linears if any(e in n for e in EXCLUDED)}
    assert kept == {
        "text_embedding.0",
        "text_embedding.2",
        "time_embedding.0",
        "time_embedding.2",
        "time_projection.1",
        "head.head",
        "casual_audio_encoder.encoder.final_linear",
    }
    count = quantize_linears_fp8(model)
    # 40 blocks x (4 self + 4 cross + 2 FFN) + 12 injectors x (4 attention + 1 AdaLN)
    assert count == len(linears) - len(kept) == 400 + 60
    converted = {n for n, m in model.named_modules() if isinstance(m, FP8Linear)}
    assert converted == linears - kept
    assert all(type(model.get_submodule(n)) is torch.nn.Linear for n in kept)
    assert not any(n.endswith(".weight") and "blocks.0.ffn" in n for n, _ in model.named_parameters())
