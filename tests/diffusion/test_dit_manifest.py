"""The 14B DiT built on the meta device has exactly upstream's state-dict keys, shapes and LoRA targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

MANIFESTS = Path(__file__).parents[2].parent / "shared/reference/manifests"
needs_manifests = pytest.mark.skipif(
    not (MANIFESTS / "dit_14b_manifest.json").is_file(), reason=f"manifest folder not found at {MANIFESTS}"
)


@pytest.fixture(scope="module")
def model_14b():
    from liveavatar.engines.diffusion.model.dit import CausalS2VDiT
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    return CausalS2VDiT(DiTConfig.wan_s2v_14b(), dtype=torch.bfloat16, device="meta")


@needs_manifests
def test_14b_state_dict_matches_upstream_manifest(model_14b):
    manifest = json.loads((MANIFESTS / "dit_14b_manifest.json").read_text())
    want = {k: tuple(shape) for k, shape, _ in manifest["state_dict"]}
    have = {k: tuple(v.shape) for k, v in model_14b.state_dict().items()}
    assert len(have) == 1260 == manifest["num_state_dict_entries"]
    assert sorted(set(want) ^ set(have)) == []
    assert {k: s for k, s in have.items() if want[k] != s} == {}
    assert sum(p.numel() for p in model_14b.parameters()) == manifest["total_parameters"]


@needs_manifests
def test_14b_lora_targets_match_upstream(model_14b):
    from liveavatar.engines.diffusion.loading.lora import lora_target_modules

    targets = json.loads((MANIFESTS / "lora_targets.json").read_text())
    want = sorted(m["module"] for m in targets["lora_wrapped_modules"])
    assert len(want) == 448
    assert sorted(lora_target_modules(model_14b)) == want


@needs_manifests
def test_config_from_upstream_json_is_the_14b_preset():
    from liveavatar.engines.diffusion.model.dit_config import DiTConfig

    manifest = json.loads((MANIFESTS / "dit_14b_manifest.json").read_text())
    cfg = DiTConfig.from_json(
        {**manifest["constructor_kwargs_passed"], "_diffusers_version": "0.31", "some_future_key": 1}
    )
    assert cfg == DiTConfig.wan_s2v_14b()
    assert cfg.unknown_keys == ("some_future_key",)
    with pytest.raises(ValueError, match="model_type"):
        DiTConfig.from_json({"model_type": "t2v"})


def test_injector_mapping_reproduces_upstream_substring_match():
    from liveavatar.engines.diffusion.model.audio_injector import injector_mapping

    assert injector_mapping(40, (0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39)) == (
        12,
        {k: i for i, k in enumerate((0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39))},
    )
    count, mapping = injector_mapping(12, (1,))  # "transformer_blocks.1" is in ".10" and ".11" too
    assert count == 3 and mapping == {1: 2}
