"""LoRA merge: W += (alpha/r) B A, key variants, metadata rank/alpha, plain keys and error cases."""

from __future__ import annotations

import zlib

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from liveavatar.errors import UserError  # noqa: E402


def _model():
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    torch.manual_seed(0)
    model = CausalS2VDiT(DiTConfig.tiny())
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model


def _pair(module: str, out_f: int, in_f: int, r: int, prefix: str = "", adapter: str = ".default"):
    g = torch.Generator().manual_seed(zlib.crc32(module.encode()))  # the same draws in every process (hash() is salted)
    return {
        f"{prefix}{module}.lora_A{adapter}.weight": torch.randn(r, in_f, generator=g),
        f"{prefix}{module}.lora_B{adapter}.weight": torch.randn(out_f, r, generator=g),
    }


@pytest.mark.parametrize(
    "prefix,adapter", [("", ".default"), ("base_model.model.", ".default"), ("base_model.model.", ""), ("", "")]
)
def test_merge_rule_and_key_variants(tmp_path, prefix, adapter):
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tensors = {
        **_pair("blocks.0.self_attn.q", 64, 64, 4, prefix, adapter),
        **_pair("blocks.1.ffn.0", 128, 64, 4, prefix, adapter),
        **_pair("audio_injector.injector.1.o", 64, 64, 4, prefix, adapter),
    }
    path = tmp_path / "lora.safetensors"
    save_file(tensors, str(path), metadata={"lora_rank": "4", "lora_alpha": "2.0"})
    result = merge_lora(model, path)
    assert (result.num_merged, result.rank, result.alpha) == (3, 4, 2.0)
    after = model.state_dict()
    for module in ("blocks.0.self_attn.q", "blocks.1.ffn.0", "audio_injector.injector.1.o"):
        a = tensors[f"{prefix}{module}.lora_A{adapter}.weight"]
        b = tensors[f"{prefix}{module}.lora_B{adapter}.weight"]
        want = before[f"{module}.weight"] + 0.5 * (b @ a)
        assert torch.allclose(after[f"{module}.weight"], want, atol=1e-6)
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"blocks.0.self_attn.q.weight", "blocks.1.ffn.0.weight", "audio_injector.injector.1.o.weight"}


def test_explicit_rank_alpha_override_metadata(tmp_path):
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    model = _model()
    w = model.blocks[0].cross_attn.k.weight.detach().clone()
    tensors = _pair("blocks.0.cross_attn.k", 64, 64, 4)
    path = tmp_path / "lora.safetensors"
    save_file(tensors, str(path), metadata={"r": "4", "alpha": "8"})
    merge_lora(model, path, alpha=1.0)  # scale 1/4 instead of 8/4
    delta = (
        tensors["blocks.0.cross_attn.k.lora_B.default.weight"] @ tensors["blocks.0.cross_attn.k.lora_A.default.weight"]
    )
    assert torch.allclose(model.blocks[0].cross_attn.k.weight, w + 0.25 * delta, atol=1e-6)


def test_unmatched_lora_key_is_an_error(tmp_path):
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    path = tmp_path / "lora.safetensors"
    # a module that does not exist, and a Linear that upstream's peft config does not adapt
    save_file(
        {**_pair("blocks.7.self_attn.q", 64, 64, 4), **_pair("text_embedding.0", 64, 32, 4)},
        str(path),
        metadata={"lora_rank": "4"},
    )
    with pytest.raises(UserError, match="4 LoRA keys match no") as err:
        merge_lora(_model(), path)
    assert "blocks.7.self_attn.q" in err.value.message


def test_half_pair_and_unknown_plain_key_are_errors(tmp_path):
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    one = _pair("blocks.0.self_attn.v", 64, 64, 4)
    path = tmp_path / "half.safetensors"
    save_file({k: v for k, v in one.items() if "lora_A" in k}, str(path), metadata={"lora_rank": "4"})
    with pytest.raises(UserError, match="only one of lora_A/lora_B"):
        merge_lora(_model(), path)
    path = tmp_path / "plain.safetensors"
    save_file({"blocks.0.not_a_param": torch.zeros(3)}, str(path))
    with pytest.raises(UserError, match="match no"):
        merge_lora(_model(), path)


def test_plain_keys_overwrite_like_upstream(tmp_path):
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    model = _model()
    q_before = model.blocks[0].self_attn.q.weight.detach().clone()
    path = tmp_path / "lora.safetensors"
    save_file(
        {
            "base_model.model.trainable_cond_mask.weight": torch.ones(3, 64),
            "base_model.model.blocks.1.self_attn.k.base_layer.weight": torch.full((64, 64), 2.0),
            "base_model.model.blocks.0.self_attn.q.weight": torch.zeros(64, 64),
        },
        str(path),
    )
    result = merge_lora(model, path)
    assert result.num_merged == 0 and result.num_overwritten == 2
    assert torch.equal(model.trainable_cond_mask.weight, torch.ones(3, 64))
    assert torch.equal(model.blocks[1].self_attn.k.weight, torch.full((64, 64), 2.0))
    # upstream's peft wrapper renames q.weight to q.base_layer.weight, so this key is ignored there too
    assert result.ignored == ["base_model.model.blocks.0.self_attn.q.weight"]
    assert torch.equal(model.blocks[0].self_attn.q.weight, q_before)


def test_defaults_reject_a_rank_that_does_not_fit(tmp_path):
    from liveavatar.engines.diffusion.loading.lora import merge_lora

    path = tmp_path / "lora.safetensors"
    save_file(_pair("blocks.0.self_attn.q", 64, 64, 4), str(path))
    with pytest.raises(UserError, match="rank 128"):
        merge_lora(_model(), path)
