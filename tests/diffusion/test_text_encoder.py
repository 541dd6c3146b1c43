"""umT5 encoder: Wan's key layout, same numbers as transformers' UMT5, tokenizer and cleaning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from liveavatar.engines.diffusion.encoders.text_encoder import T5Config, T5Encoder, TextEncoder, clean_prompt, load_t5  # noqa: E402
from liveavatar.engines.diffusion.loading.layout import T5_FILE, TOKENIZER_DIR  # noqa: E402
from liveavatar.errors import UserError  # noqa: E402
from liveavatar.tools.tiny_checkpoint import TINY_T5, write_tiny_t5, write_tiny_tokenizer  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[3] / "shared" / "reference" / "manifests" / "t5_manifest.json"
SMALL = T5Config(vocab=64, dim=32, dim_attn=32, dim_ffn=48, num_heads=4, num_layers=2, num_buckets=32)


def wan_to_hf(state: dict) -> dict:
    """Wan's T5 names -> transformers' UMT5EncoderModel names (the test's independent reference)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if key == "token_embedding.weight":
            out["shared.weight"] = out["encoder.embed_tokens.weight"] = value
        elif key == "norm.weight":
            out["encoder.final_layer_norm.weight"] = value
        else:
            n, rest = parts[1], ".".join(parts[2:])
            name = {
                "norm1.weight": "layer.0.layer_norm.weight",
                "attn.q.weight": "layer.0.SelfAttention.q.weight",
                "attn.k.weight": "layer.0.SelfAttention.k.weight",
                "attn.v.weight": "layer.0.SelfAttention.v.weight",
                "attn.o.weight": "layer.0.SelfAttention.o.weight",
                "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
                "norm2.weight": "layer.1.layer_norm.weight",
                "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
                "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
                "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
            }[rest]
            out[f"encoder.block.{n}.{name}"] = value
    return out


def _random_model(config: T5Config, seed: int = 0) -> T5Encoder:
    torch.manual_seed(seed)
    model = T5Encoder(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    return model


def test_full_size_layout_matches_the_release():
    with torch.device("meta"):
        state = T5Encoder(T5Config.umt5_xxl()).state_dict()
    assert len(state) == 242
    assert sum(v.numel() for v in state.values()) == 5_680_910_336
    assert list(state["blocks.23.pos_embedding.embedding.weight"].shape) == [32, 64]
    assert list(state["blocks.0.ffn.gate.0.weight"].shape) == [10240, 4096]
    if MANIFEST.is_file():
        expected = {k: shape for k, shape, _ in json.loads(MANIFEST.read_text())["state_dict"]}
        assert {k: list(v.shape) for k, v in state.items()} == expected
    assert T5Config.from_state_dict(state, Path("t5.pth")) == T5Config.umt5_xxl()


def test_matches_transformers_umt5():
    from transformers import UMT5Config, UMT5EncoderModel

    ours = _random_model(SMALL)
    hf_config = UMT5Config(
        vocab_size=SMALL.vocab, d_model=SMALL.dim, d_kv=SMALL.dim_attn // SMALL.num_heads, d_ff=SMALL.dim_ffn,
        num_layers=SMALL.num_layers, num_heads=SMALL.num_heads, relative_attention_num_buckets=SMALL.num_buckets,
        relative_attention_max_distance=SMALL.max_distance, feed_forward_proj="gated-gelu", layer_norm_epsilon=SMALL.eps,
        dropout_rate=0.0, is_encoder_decoder=False, use_cache=False,
    )  # fmt: skip
    reference = UMT5EncoderModel(hf_config).eval()
    converted = wan_to_hf(ours.state_dict())
    assert set(converted) == set(reference.state_dict())
    reference.load_state_dict(converted)
    torch.manual_seed(1)
    ids = torch.randint(0, SMALL.vocab, (2, 150))  # long enough for the far (log-spaced, clipped) buckets
    mask = torch.ones_like(ids)
    mask[1, 100:] = 0
    with torch.no_grad():
        want = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours(ids, mask)
    torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[1, :100], want[1, :100], atol=1e-4, rtol=1e-4)


def test_padding_with_a_mask_leaves_real_tokens_unchanged():
    model = _random_model(SMALL, seed=2)
    ids = torch.randint(3, SMALL.vocab, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 7, dtype=torch.long)], dim=1)
    mask = (torch.arange(16) < 9).long()[None]
    with torch.no_grad():
        torch.testing.assert_close(model(padded, mask)[:, :9], model(ids), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model(padded)[:, :9], model(ids), atol=1e-3)  # the mask matters


def test_clean_prompt():
    assert clean_prompt("  a &amp;amp; b \n\t c  ") == "a & b c"
    assert clean_prompt("&lt;smile&gt;") == "<smile>"
    # ftfy's fixes, as upstream: curly quotes, ligatures, full-width text, mojibake
    assert clean_prompt("She says \u201chello\u201d, it\u2019s \ufb01ne") == 'She says "hello", it\'s fine'
    assert (
        clean_prompt("\uff21\uff56\uff41\uff54\uff41\uff52\u3000\uff53\uff4d\uff49\uff4c\uff45\uff53")
        == "Avatar smiles"
    )
    assert clean_prompt("caf\u00c3\u00a9 au lait") == "caf\u00e9 au lait"


def test_clean_prompt_requires_ftfy(monkeypatch):
    import sys

    from liveavatar.errors import UserError

    monkeypatch.setitem(sys.modules, "ftfy", None)  # as if not installed
    with pytest.raises(UserError, match="ftfy"):
        clean_prompt("a prompt")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    write_tiny_t5(root)
    write_tiny_tokenizer(root)
    return root


def test_tiny_files_load_through_the_real_loader(tiny_ckpt):
    assert (tiny_ckpt / T5_FILE).is_file() and (tiny_ckpt / TOKENIZER_DIR / "tokenizer_config.json").is_file()
    assert torch.load(tiny_ckpt / T5_FILE, weights_only=True)["norm.weight"].dtype == torch.bfloat16
    encoder = TextEncoder.from_checkpoint(tiny_ckpt, "cpu", torch.float32)
    assert encoder.model.config == TINY_T5
    ids = encoder.token_ids("a young woman is talking")
    assert ids[0, -1].item() == 1 and ids.shape[1] > 3  # EOS (id 1, as umT5) appended
    out = encoder.encode("a young   woman is talking")
    assert out.shape == (ids.shape[1], TINY_T5.dim) and out.dtype == torch.float32
    same = encoder.encode("a young woman is talking")
    torch.testing.assert_close(out, same)  # whitespace is normalised before tokenising
    assert encoder.encode("").shape == (1, TINY_T5.dim)  # an empty prompt is just EOS


def test_long_prompts_are_cut_at_512_tokens(tiny_ckpt):
    encoder = TextEncoder.from_checkpoint(tiny_ckpt, "cpu", torch.bfloat16)
    ids = encoder.token_ids("talking " * 600)
    assert ids.shape[1] == 512 and ids[0, -1].item() == 1
    assert encoder.encode("talking " * 600).shape == (512, TINY_T5.dim)


def test_missing_pieces_are_user_errors(tmp_path, tiny_ckpt):
    with pytest.raises(UserError, match="tokenizer"):
        TextEncoder.from_checkpoint(tmp_path)
    state = torch.load(tiny_ckpt / T5_FILE, weights_only=True)
    del state["blocks.1.ffn.fc2.weight"]
    torch.save(state, tmp_path / T5_FILE)
    with pytest.raises(UserError, match=r"1 missing: blocks\.1\.ffn\.fc2\.weight"):
        load_t5(tmp_path / T5_FILE)
