"""DiT checkpoint loading: sharded layout with index.json, single file, strict key reports."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from liveavatar.errors import UserError  # noqa: E402

TINY_JSON = {
    "_class_name": "CausalWanModel_S2V",
    "_diffusers_version": "0.35.1",
    "model_type": "s2v",
    "dim": 64,
    "ffn_dim": 128,
    "freq_dim": 32,
    "num_heads": 2,
    "num_layers": 2,
    "text_len": 16,
    "text_dim": 32,
    "audio_dim": 32,
    "audio_inject_layers": [0, 1],
    "patch_size": [1, 2, 2],
    "window_size": [-1, -1],
    "zero_init": True,
    "enable_motioner": False,
    "cond_dim": 16,
}


def _random_state(seed: int = 0) -> dict:
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    meta = CausalS2VDiT(DiTConfig.from_json(TINY_JSON), device="meta")
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g).to(torch.bfloat16) for k, v in meta.state_dict().items()}


def _write_sharded(folder, state: dict, shards: int = 3) -> None:
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = keys[i::shards]
        save_file({k: state[k] for k in part}, str(folder / name))
        weight_map.update({k: name for k in part})
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})
    )
    (folder / "config.json").write_text(json.dumps(TINY_JSON))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sharded_folder_loads_every_tensor_cast(tmp_path, dtype):
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit

    state = _random_state()
    _write_sharded(tmp_path, state)
    model = load_dit(tmp_path, device="cpu", dtype=dtype)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert loaded[k].dtype == dtype and loaded[k].device.type == "cpu"
        assert torch.equal(loaded[k], v.to(dtype)), k
    assert not any(p.is_meta for p in model.parameters())


def test_single_file_and_explicit_file(tmp_path):
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit, load_dit_checkpoint
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    state = _random_state(1)
    save_file(state, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(TINY_JSON))
    model = load_dit(tmp_path)
    assert torch.equal(model.blocks[1].ffn[2].weight, state["blocks.1.ffn.2.weight"].float())
    other = CausalS2VDiT(DiTConfig.from_json(TINY_JSON), device="meta")
    report = load_dit_checkpoint(other, tmp_path / "diffusion_pytorch_model.safetensors", device="cpu")
    assert report.num_tensors == len(state)


def test_missing_and_unexpected_keys_are_reported(tmp_path):
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit

    state = _random_state()
    del state["head.modulation"], state["blocks.0.norm3.bias"]
    state["blocks.9.extra.weight"] = torch.zeros(2)
    _write_sharded(tmp_path, state)
    with pytest.raises(UserError) as err:
        load_dit(tmp_path)
    msg = err.value.message
    assert "2 missing: blocks.0.norm3.bias, head.modulation" in msg
    assert "1 unexpected: blocks.9.extra.weight" in msg
    assert err.value.one_line().startswith(f"error: {tmp_path}:")


def test_shape_mismatch_and_missing_shard(tmp_path):
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit

    state = _random_state()
    state["head.head.weight"] = torch.zeros(3, 3)
    _write_sharded(tmp_path, state)
    with pytest.raises(UserError, match=r"head.head.weight has shape \(3, 3\)"):
        load_dit(tmp_path)
    (tmp_path / "diffusion_pytorch_model-00002-of-00003.safetensors").unlink()
    with pytest.raises(UserError, match="shard"):
        load_dit(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="config.json is missing"):
        load_dit(empty)
    (empty / "config.json").write_text(json.dumps(TINY_JSON))
    with pytest.raises(UserError, match="index.json"):
        load_dit(empty)


def test_unsupported_config_value_is_one_user_error(tmp_path, capsys):
    """zero_timestep false (reference tokens at the noisy timestep) is not implemented: refused, not ignored."""
    from liveavatar.engines.diffusion.loading.checkpoint import load_dit

    _write_sharded(tmp_path, _random_state())
    (tmp_path / "config.json").write_text(json.dumps({**TINY_JSON, "zero_timestep": False}))
    with pytest.raises(UserError) as err:
        load_dit(tmp_path)
    line = err.value.one_line()
    assert "zero_timestep" in line and "config.json" in line and "\n" not in line
    (tmp_path / "config.json").write_text(json.dumps({**TINY_JSON, "zero_timestep": True}))
    assert load_dit(tmp_path).config.num_layers == 2
