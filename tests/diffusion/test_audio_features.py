"""wav2vec2 features per video frame: 25 layers, 50 -> 30 Hz, round(1.2 i) sampling, zero tail."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from liveavatar.engines.diffusion.encoders.audio_features import (  # noqa: E402
    AudioFeatureEncoder,
    frame_indices,
    num_feature_frames,
    per_video_frame,
    to_motion_rate,
    wav2vec2_hidden_states,
)
from liveavatar.engines.diffusion.loading.layout import WAV2VEC_DIR  # noqa: E402
from liveavatar.errors import UserError  # noqa: E402
from liveavatar.sizing import audio_clip_count  # noqa: E402
from liveavatar.tools.tiny_checkpoint import TINY_WAV2VEC2, write_tiny_wav2vec2  # noqa: E402


def upstream_bucket(embed: torch.Tensor, fps: int, batch_frames: int) -> tuple[torch.Tensor, int]:
    """Upstream's get_audio_embed_bucket_fps (m=0, video_rate 30), written out plainly."""
    layers, n30, dim = embed.shape
    clips = int(n30 / (batch_frames * 30 / fps)) + 1
    count = clips * batch_frames
    total = math.ceil(count / fps * 30)  # audio frames plus upstream's padding
    times = np.linspace(0, count / fps, count, endpoint=False)
    idx = np.clip(np.round(times * 30).astype(int), 0, total - 1)
    rows = [embed[:, i] if i < n30 else torch.zeros(layers, dim) for i in idx]
    return torch.stack(rows), clips


def test_frame_indices_are_round_1_2_i():
    idx = frame_indices(500)
    assert idx[:8].tolist() == [0, 1, 2, 4, 5, 6, 7, 8]
    assert np.array_equal(idx, np.round(1.2 * np.arange(500)).astype(int))


def test_motion_rate_resampling():
    hidden = torch.arange(100.0).view(1, 100, 1).repeat(2, 1, 3)
    out = to_motion_rate(hidden)
    assert out.shape == (2, 60, 3)
    assert out[0, 0, 0].item() == 0.0 and out[0, -1, 0].item() == pytest.approx(99.0)  # align_corners
    assert to_motion_rate(torch.zeros(25, 1, 4)).shape == (25, 0, 4)


def test_per_video_frame_matches_upstream_buckets():
    torch.manual_seed(0)
    n30, frames_per_clip = 131, 48
    embed = torch.randn(25, n30, 8)
    want, clips = upstream_bucket(embed, fps=25, batch_frames=frames_per_clip)
    got = per_video_frame(embed, clips * frames_per_clip)
    assert got.shape == (1, 25, 8, clips * frames_per_clip)
    torch.testing.assert_close(got[0].permute(2, 0, 1), want)
    last_real = int(np.nonzero(frame_indices(clips * frames_per_clip) < n30)[0][-1])
    assert got[..., last_real].abs().sum() > 0 and got[..., last_real + 1 :].abs().sum() == 0


def test_clip_count_agrees_with_sizing():
    for seconds in (0.5, 3.0, 7.3, 61.0):
        samples = int(seconds * 16000)
        n30 = int(num_feature_frames(samples) / 50 * 30)
        _, clips = upstream_bucket(torch.zeros(1, n30, 1), fps=25, batch_frames=48)
        assert clips == audio_clip_count(samples, 48)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_wav2vec2(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def encoder(tiny_folder):
    return AudioFeatureEncoder.from_folder(tiny_folder, "cpu", torch.float32)


def test_tiny_wav2vec2_folder(tiny_folder, encoder):
    assert tiny_folder.name == WAV2VEC_DIR
    assert (tiny_folder / "preprocessor_config.json").is_file() and (tiny_folder / "config.json").is_file()
    assert encoder.num_layers == 25 and encoder.dim == TINY_WAV2VEC2["hidden_size"]


def test_encode_matches_the_upstream_recipe(tiny_folder, encoder):
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 2 + 123)).astype(np.float32)
    num_frames = 96
    got = encoder.encode(audio, num_frames)
    assert got.shape == (1, 25, TINY_WAV2VEC2["hidden_size"], num_frames) and got.dtype == torch.float32
    # upstream: processor normalisation, Wav2Vec2ForCTC hidden states, 30 Hz, then the buckets
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(tiny_folder), local_files_only=True)
    ctc = Wav2Vec2ForCTC.from_pretrained(str(tiny_folder), local_files_only=True).eval()
    values = extractor(audio, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        hidden = torch.cat(ctc(values, output_hidden_states=True).hidden_states)
    assert hidden.shape[1] == num_feature_frames(audio.size)
    n30 = int(hidden.shape[1] / 50 * 30)
    embed = torch.nn.functional.interpolate(
        hidden.transpose(1, 2), size=n30, mode="linear", align_corners=True
    ).transpose(1, 2)
    want, _ = upstream_bucket(embed, fps=25, batch_frames=48)
    torch.testing.assert_close(got[0].permute(2, 0, 1), want[:num_frames], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_chunked_mode(encoder):
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32)
    values = encoder.extractor(audio, sampling_rate=16000, return_tensors="pt").input_values[0]
    whole = wav2vec2_hidden_states(values, encoder.model)
    covered = wav2vec2_hidden_states(values, encoder.model, chunk_seconds=1.0, context_seconds=4.0)
    torch.testing.assert_close(covered, whole, atol=1e-5, rtol=1e-5)  # context spans the clip: exact
    local = wav2vec2_hidden_states(values, encoder.model, chunk_seconds=1.0, context_seconds=0.5)
    assert local.shape == whole.shape
    assert encoder.encode(audio, 10, chunk_seconds=1.0).shape == (1, 25, TINY_WAV2VEC2["hidden_size"], 10)


def test_short_audio_and_bf16(encoder, tiny_folder):
    out = encoder.encode(np.zeros(100, dtype=np.float32), 5)
    assert out.shape[-1] == 5 and out.abs().sum() == 0  # under one 30 Hz frame: all frames silent
    half = AudioFeatureEncoder.from_folder(tiny_folder, "cpu", torch.bfloat16)
    assert half.encode(np.zeros(16000, dtype=np.float32), 4).dtype == torch.bfloat16


def test_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no wav2vec2 model"):
        AudioFeatureEncoder.from_folder(tmp_path / WAV2VEC_DIR)
