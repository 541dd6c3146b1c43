"""Spatially tiled streaming decode (the planner's "smaller decode passes"): seams against a whole decode."""

from __future__ import annotations

import torch

from liveavatar.engines.diffusion.vae.tiles import TiledStreamingDecoder, tile_spans
from liveavatar.engines.diffusion.vae.vae import StreamingDecoder, build_vae
from liveavatar.tools.tiny_checkpoint import TINY_VAE

# frames in [-1, 1]. Tiles are approximate (the VAE's middle block attends over the whole frame):
# on this tiny random VAE (2 x 32 latents, 8 overlap columns) measured mean |diff| 0.031, max 0.54
# near the seam (about 4 and 70 uint8 levels); the budget leaves ~30 % room
SEAM_BUDGET_MEAN = 0.04
SEAM_BUDGET_MAX = 0.75


def test_tile_spans_cover_with_overlap():
    assert tile_spans(24, 1, 4) == [(0, 24)]
    spans = tile_spans(88, 2, 8)
    assert spans == [(0, 48), (40, 88)]
    spans = tile_spans(30, 3, 4)
    assert all(spans[i][1] - spans[i + 1][0] == 4 for i in range(2)) and spans[-1][1] == 30


def _decode(decoder, latents):
    return torch.cat([decoder.decode_next(latents[:, :, i : i + 1]) for i in range(latents.shape[2])], dim=2)


def test_tiles_and_a_mid_video_handover_match_the_whole_decode_within_budget():
    torch.manual_seed(0)
    vae = build_vae(TINY_VAE)
    latents = torch.randn(1, 16, 3, 2, 32)
    whole = StreamingDecoder(vae, 1)
    head = whole.decode_next(latents[:, :, :1])
    after_first = whole.save()
    ref = torch.cat([head, _decode(whole, latents[:, :, 1:])], dim=2)
    tiled = _decode(TiledStreamingDecoder(vae, tiles=2), latents)
    assert tiled.shape == ref.shape
    diff = (tiled - ref).abs()
    assert 0 < diff.mean() < SEAM_BUDGET_MEAN and diff.max() < SEAM_BUDGET_MAX, (diff.mean(), diff.max())
    # the ladder switches to tiles mid-video: each tile takes its crop of the whole decoder's state
    resumed = StreamingDecoder(vae, 1)
    resumed.restore(after_first)
    tail = _decode(TiledStreamingDecoder(vae, tiles=2, state_from=resumed), latents[:, :, 1:])
    diff = (tail - ref[:, :, head.shape[2] :]).abs()
    assert diff.mean() < SEAM_BUDGET_MEAN and diff.max() < SEAM_BUDGET_MAX, (diff.mean(), diff.max())
