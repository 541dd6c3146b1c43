"""Speech -> per-video-frame wav2vec2 features, as the S2V DiT expects them.

wav2vec2 (XLSR-53, the ``wav2vec2-large-xlsr-53-english`` folder) gives 25 hidden states (the
embedding output and 24 layers) at 50 Hz. They are resampled linearly (align_corners) to 30 Hz,
``N30 = int(N50 / 50 * 30)``, and video frame ``i`` (25 fps) takes 30 Hz index ``round(1.2 i)``;
frames past the audio get zeros. Result: ``[1, 25, dim, num_frames]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from liveavatar.engines.diffusion.loading.layout import WAV2VEC_DIR
from liveavatar.errors import UserError
from liveavatar.sizing import AUDIO_SAMPLE_RATE, FPS

FEATURE_RATE = 50  # wav2vec2 frames per second at 16 kHz
MOTION_RATE = 30  # upstream's intermediate feature rate
WINDOW = 400  # samples in wav2vec2's first frame (25 ms)
HOP = 320  # samples between frames (20 ms)


def num_feature_frames(num_samples: int) -> int:
    """wav2vec2's frame count for this many 16 kHz samples."""
    return max(0, (num_samples - WINDOW) // HOP + 1)


def frame_indices(num_frames: int) -> np.ndarray:
    """30 Hz feature index for each 25 fps video frame: ``round(1.2 i)``."""
    times = np.linspace(0.0, num_frames / FPS, num_frames, endpoint=False)
    return np.round(times * MOTION_RATE).astype(np.int64)


def to_motion_rate(hidden: torch.Tensor) -> torch.Tensor:
    """``[layers, N50, dim]`` at 50 Hz -> ``[layers, N30, dim]`` at 30 Hz (fp32)."""
    n30 = int(hidden.shape[1] / FEATURE_RATE * MOTION_RATE)
    if n30 <= 0:
        return hidden.new_zeros(hidden.shape[0], 0, hidden.shape[2], dtype=torch.float32)
    resampled = F.interpolate(hidden.float().transpose(1, 2), size=n30, mode="linear", align_corners=True)
    return resampled.transpose(1, 2)


def per_video_frame(features_30hz: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``[layers, N30, dim]`` -> ``[1, layers, dim, num_frames]``; frames past the audio are zero."""
    layers, n30, dim = features_30hz.shape
    idx = torch.from_numpy(frame_indices(num_frames)).to(features_30hz.device)
    out = features_30hz.new_zeros(layers, num_frames, dim)
    valid = idx < n30
    out[:, valid] = features_30hz[:, idx[valid]]
    return out.permute(0, 2, 1).unsqueeze(0)


def _chunks(num_frames: int, chunk: int, context: int) -> list[tuple[int, int, int, int]]:
    """(run_start, run_stop, keep_start, keep_stop) frame ranges covering ``num_frames``."""
    spans = []
    for keep_start in range(0, num_frames, chunk):
        keep_stop = min(num_frames, keep_start + chunk)
        spans.append((max(0, keep_start - context), min(num_frames, keep_stop + context), keep_start, keep_stop))
    return spans


@torch.no_grad()
def wav2vec2_hidden_states(
    values: torch.Tensor, model, chunk_seconds: float | None = None, context_seconds: float = 5.0
) -> torch.Tensor:
    """Normalised 16 kHz samples ``[S]`` -> all hidden states ``[layers, N50, dim]`` (model dtype).

    ``chunk_seconds=None`` runs the whole clip at once (upstream; attention memory grows with the
    square of the length). Otherwise the clip runs in pieces with ``context_seconds`` of audio on
    each side, so the features differ from the whole-clip ones only through far-away context.
    """
    param = next(model.parameters())
    total = num_feature_frames(values.shape[-1])
    if chunk_seconds is None or total <= chunk_seconds * FEATURE_RATE:
        out = model(values.reshape(1, -1).to(param.device, param.dtype), output_hidden_states=True)
        return torch.cat(out.hidden_states, dim=0)
    pieces = []
    for run_start, run_stop, keep_start, keep_stop in _chunks(
        total, int(chunk_seconds * FEATURE_RATE), int(context_seconds * FEATURE_RATE)
    ):
        window = values[run_start * HOP : (run_stop - 1) * HOP + WINDOW].reshape(1, -1)
        out = model(window.to(param.device, param.dtype), output_hidden_states=True)
        pieces.append(torch.cat(out.hidden_states, dim=0)[:, keep_start - run_start : keep_stop - run_start])
    return torch.cat(pieces, dim=1)


def encode_audio(
    audio_16k: np.ndarray,
    num_frames: int,
    model,
    extractor,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    chunk_seconds: float | None = None,
) -> torch.Tensor:
    """Mono float 16 kHz audio -> wav2vec2 features per video frame ``[1, 25, dim, num_frames]``.

    ``num_frames`` is the number of video frames to condition (clips x frames per clip); frame
    ``i`` covers the audio around ``i / 25`` s. ``device`` is where the result goes.
    """
    audio = np.asarray(audio_16k, dtype=np.float32).reshape(-1)
    if audio.size < WINDOW:
        audio = np.pad(audio, (0, WINDOW - audio.size))
    values = extractor(audio, sampling_rate=AUDIO_SAMPLE_RATE, return_tensors="pt").input_values[0]
    hidden = wav2vec2_hidden_states(values, model, chunk_seconds)
    return per_video_frame(to_motion_rate(hidden), num_frames).to(device=device, dtype=dtype)


class AudioFeatureEncoder:
    """wav2vec2 and its feature extractor, loaded from the checkpoint's HF-format folder."""

    def __init__(self, model, extractor, device: torch.device | str, dtype: torch.dtype) -> None:
        self.model = model
        self.extractor = extractor
        self.device = device
        self.dtype = dtype

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers + 1

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @classmethod
    def from_folder(
        cls, path: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.bfloat16
    ) -> AudioFeatureEncoder:
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model
        from transformers.utils import logging as hf_logging

        path = Path(path)
        if not (path / "config.json").is_file():
            raise UserError(
                "--ckpt_dir",
                f"{path} holds no wav2vec2 model (no config.json)",
                f"put the {WAV2VEC_DIR} folder of the Wan-AI/Wan2.2-S2V-14B release there",
            )
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the CTC head in the folder is unused; don't warn about it
        hf_logging.disable_progress_bar()
        try:
            extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(path), local_files_only=True)
            model = Wav2Vec2Model.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise UserError(
                "--ckpt_dir",
                f"the wav2vec2 model in {path} could not be loaded ({exc})",
                f"put the {WAV2VEC_DIR} folder of the Wan-AI/Wan2.2-S2V-14B release there",
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        return cls(model.to(device).eval().requires_grad_(False), extractor, device, dtype)

    def encode(self, audio_16k: np.ndarray, num_frames: int, chunk_seconds: float | None = None) -> torch.Tensor:
        """See :func:`encode_audio`: ``[1, layers, dim, num_frames]`` on this encoder's device."""
        return encode_audio(audio_16k, num_frames, self.model, self.extractor, self.device, self.dtype, chunk_seconds)
