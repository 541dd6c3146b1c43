"""Loading Wan2.1_VAE.pth: the tiny writer's file, and readable reports for broken files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from liveavatar.engines.diffusion.loading.layout import VAE_FILE  # noqa: E402
from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, load_vae  # noqa: E402
from liveavatar.errors import UserError  # noqa: E402
from liveavatar.tools.tiny_checkpoint import TINY_VAE, write_tiny_vae  # noqa: E402


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return write_tiny_vae(tmp_path_factory.mktemp("ckpt"))


def test_tiny_vae_loads_through_the_real_loader(tiny_file):
    assert tiny_file.name == VAE_FILE
    vae = load_vae(tiny_file, "cpu", torch.float32)
    assert vae.config == TINY_VAE
    saved = torch.load(tiny_file, weights_only=True)
    for key, value in vae.state_dict().items():
        assert torch.equal(value, saved[key]), key
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    latents = vae.encode(video)
    assert latents.shape == (1, 16, 2, 2, 2)
    frames = StreamingDecoder(vae).decode_next(latents)
    assert frames.shape == (1, 3, 5, 16, 16)


def test_loader_casts_to_the_requested_dtype(tiny_file):
    vae = load_vae(tiny_file, "cpu", torch.bfloat16)
    assert {p.dtype for p in vae.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in vae.parameters())


def _broken(tmp_path, tiny_file, edit):
    state = torch.load(tiny_file, weights_only=True)
    edit(state)
    path = tmp_path / VAE_FILE
    torch.save(state, path)
    return path


def test_missing_and_unexpected_keys_are_reported(tmp_path, tiny_file):
    def edit(state):
        state["decoder.head.2.bias_renamed"] = state.pop("decoder.head.2.bias")

    with pytest.raises(UserError) as err:
        load_vae(_broken(tmp_path, tiny_file, edit))
    text = err.value.one_line()
    assert "1 missing: decoder.head.2.bias" in text and "1 unexpected: decoder.head.2.bias_renamed" in text
    assert err.value.input == "--ckpt_dir"


def test_wrong_shapes_are_reported(tmp_path, tiny_file):
    def edit(state):
        state["decoder.middle.1.proj.bias"] = torch.zeros(3)

    with pytest.raises(UserError, match=r"wrong shape: decoder\.middle\.1\.proj\.bias \[3\]"):
        load_vae(_broken(tmp_path, tiny_file, edit))


def test_other_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="is missing"):
        load_vae(tmp_path / VAE_FILE)
    not_vae = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, not_vae)
    with pytest.raises(UserError, match="not a Wan2.1 VAE"):
        load_vae(not_vae)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="could not be read"):
        load_vae(garbage)
