"""Wan2.1 VAE: layout of the real checkpoint, causal chunked encode, streaming decode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from liveavatar.engines.diffusion.vae.blocks import CausalConv3d, Resample  # noqa: E402
from liveavatar.engines.diffusion.vae.vae import (  # noqa: E402
    WAN21_LATENT_MEAN,
    StreamingDecoder,
    VAEConfig,
    WanVAE,
    build_vae,
)

MANIFEST = Path(__file__).resolve().parents[3] / "shared" / "reference" / "manifests" / "vae_manifest.json"
SMALL = VAEConfig(dim=4)


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    torch.manual_seed(0)
    model = build_vae(SMALL)
    with torch.no_grad():  # livelier than the default init, so that errors cannot hide in tiny values
        for p in model.parameters():
            p.normal_(0.0, 0.3) if p.ndim > 1 else p.normal_(1.0, 0.1)
    return model


def test_full_size_layout_matches_the_release():
    with torch.device("meta"):
        model = WanVAE(VAEConfig.wan21())
    state = model.state_dict()
    assert len(state) == 194
    assert sum(v.numel() for v in state.values()) == 126_892_531
    assert list(state["decoder.upsamples.3.time_conv.weight"].shape) == [768, 384, 3, 1, 1]
    assert list(state["encoder.middle.1.to_qkv.weight"].shape) == [1152, 384, 1, 1]
    assert list(state["decoder.middle.1.norm.gamma"].shape) == [384, 1, 1]
    if MANIFEST.is_file():
        expected = {k: shape for k, shape, _ in json.loads(MANIFEST.read_text())["state_dict"]}
        assert {k: list(v.shape) for k, v in state.items()} == expected


def test_config_is_read_back_from_shapes():
    for config in (
        VAEConfig.wan21(),
        SMALL,
        VAEConfig(dim=2, dim_mult=(1, 2, 2), num_res_blocks=1, temporal_downsample=(True, False)),
    ):
        with torch.device("meta"):
            state = WanVAE(config).state_dict()
        assert VAEConfig.from_state_dict(state, Path("x.pth")) == config


def test_encode_shape_and_chunking_is_exact(vae):
    torch.manual_seed(1)
    video = torch.rand(2, 3, 13, 16, 24) * 2 - 1
    latents = vae.encode(video)
    assert latents.shape == (2, 16, 4, 2, 3)
    # the whole clip in one causal pass (no chunks, no cache) gives the same latents
    mean, std = vae.latent_stats()
    whole = (vae.conv1(vae.encoder(video, None))[:, :16] - mean) / std
    torch.testing.assert_close(latents, whole, atol=1e-5, rtol=1e-5)
    # frames beyond the last whole chunk of 4 are ignored
    assert vae.encode(video[:, :, :11]).shape[2] == 3


def test_encode_is_causal(vae):
    torch.manual_seed(2)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    changed = video.clone()
    changed[:, :, 5:] = -changed[:, :, 5:]  # alter the last chunk only
    a, b = vae.encode(video), vae.encode(changed)
    torch.testing.assert_close(a[:, :, :2], b[:, :, :2], atol=0, rtol=0)
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])


def test_latent_normalisation_uses_upstream_statistics(vae):
    mean, std = vae.latent_stats()
    assert mean.flatten()[7].item() == pytest.approx(1.5508)
    assert std.flatten()[8].item() == pytest.approx(3.2687)
    assert len(WAN21_LATENT_MEAN) == 16
    z = torch.randn(1, 16, 2, 3, 3)
    raw = vae.unnormalise(z)
    torch.testing.assert_close((raw - mean) / std, z, atol=1e-6, rtol=1e-6)


def _full_decode(vae, latents):
    return vae.decoder(vae.conv2(vae.unnormalise(latents)), None).clamp(-1, 1)


@pytest.mark.parametrize("block", [1, 3])
def test_streaming_decode_equals_full_decode(vae, block):
    torch.manual_seed(3)
    latents = torch.randn(1, 16, 7, 3, 4)
    full = _full_decode(vae, latents)
    assert full.shape == (1, 3, 25, 24, 32)
    stream = StreamingDecoder(vae)
    pieces = [stream.decode_next(chunk) for chunk in latents.split(block, dim=2)]
    counts = [p.shape[2] for p in pieces]
    assert counts[0] == 4 * block - 3 and all(c == 4 * block for c in counts[1:-1])
    out = torch.cat(pieces, dim=2)
    assert (out - full).abs().max().item() < 1e-5
    assert 0.1 < full.std().item()  # not a trivially flat output


def test_decode_matches_any_pass_size_and_clamps(vae):
    torch.manual_seed(4)
    latents = 3 * torch.randn(1, 16, 5, 2, 2)
    a = vae.decode(latents)
    b = vae.decode(latents, latents_per_pass=0)
    assert (a - b).abs().max().item() < 1e-5
    assert a.shape == (1, 3, 17, 16, 16)
    assert a.min().item() >= -1 and a.max().item() <= 1


def test_reset_starts_a_new_video(vae):
    torch.manual_seed(5)
    first, second = torch.randn(1, 16, 3, 2, 3), torch.randn(1, 16, 3, 2, 3)
    stream = StreamingDecoder(vae)
    stream.decode_next(first)
    continued = stream.decode_next(second)
    assert continued.shape[2] == 12
    stream.reset()
    assert not stream.started
    fresh = stream.decode_next(second)
    assert fresh.shape[2] == 9
    torch.testing.assert_close(fresh, vae.decode(second), atol=1e-5, rtol=1e-5)


def test_bf16_decode_runs_close_to_fp32(vae):
    torch.manual_seed(6)
    latents = torch.randn(1, 16, 3, 2, 2)
    half = build_vae(SMALL, dtype=torch.bfloat16)
    half.load_state_dict(vae.state_dict())
    out = StreamingDecoder(half).decode_next(latents)
    assert out.dtype == torch.bfloat16
    assert (out.float() - vae.decode(latents)).abs().mean().item() < 0.05


def _probe_time_conv(conv: CausalConv3d, taps: dict[int, float], out_half: int | None = None) -> None:
    """Make a (3,1,1) time conv copy channels: output = sum(weight * input frame at tap)."""
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        c = conv.in_channels
        for tap, w in taps.items():
            for ch in range(c):
                row = ch if out_half is None else ch + out_half * c
                conv.weight[row, ch, tap, 0, 0] = w


def test_temporal_upsampler_semantics():
    """Frame 0 passes undoubled; later frame t gives (x_t, x_{t-1}) where frame 0 counts as zero."""
    up = Resample(2, "upsample3d")
    _probe_time_conv(up.time_conv, {2: 1.0}, out_half=0)  # first output of frame t: x_t
    with torch.no_grad():  # second output of frame t: 10 * x_{t-1}
        for ch in range(2):
            up.time_conv.weight[ch + 2, ch, 1, 0, 0] = 10.0
    frames = torch.arange(1.0, 4.0).view(1, 1, 3, 1, 1).expand(1, 2, 3, 1, 1).contiguous()  # f0=1, f1=2, f2=3
    whole = up._time_up(frames, None)[0, 0, :, 0, 0].tolist()
    assert whole == [1.0, 2.0, 0.0, 3.0, 20.0]
    cache: list = [None] * 1
    up.time_conv.slot = 0
    streamed = [up._time_up(frames[:, :, i : i + 1], cache)[0, 0, :, 0, 0].tolist() for i in range(3)]
    assert streamed == [[1.0], [2.0, 0.0], [3.0, 20.0]]


def test_temporal_downsampler_semantics():
    """Frame 0 is kept; then windows of 3 frames with stride 2 starting at frame 0."""
    down = Resample(1, "downsample3d")
    _probe_time_conv(down.time_conv, {0: 100.0, 1: 10.0, 2: 1.0})
    frames = torch.arange(1.0, 10.0).view(1, 1, 9, 1, 1)  # f0..f8 = 1..9
    expected = [1.0, 123.0, 345.0, 567.0, 789.0]
    assert down._time_down(frames, None)[0, 0, :, 0, 0].tolist() == expected
    cache: list = [None]
    down.slot = 0
    chunks = [frames[:, :, :1], frames[:, :, 1:5], frames[:, :, 5:9]]
    streamed = [v for c in chunks for v in down._time_down(c, cache)[0, 0, :, 0, 0].tolist()]
    assert streamed == expected
