"""wav2vec2 features for a live session: a sliding window over the audio, with a bounded lookahead.

Offline (audio_features.py) wav2vec2 sees the whole track at once: every frame's features depend
on speech seconds before and after it, the samples are normalised over the whole track, and the
50 Hz -> 30 Hz resampling stretches by the track's length. Live, the features of a block's frames are
computed when the block's audio plus ``lookahead_s`` has arrived, from a window holding the last
``context_s`` of audio before the block, the block, and the lookahead; the window is normalised on
its own, and the 30 Hz grid is the exact 5/3 of the 50 Hz one. The wav2vec2 frame grid of every window
is the offline one (windows start on a 20 ms hop), so with enough context and lookahead the two
agree; benchmarks/bench_live_features.py measures how far apart they are.
"""

from __future__ import annotations

import numpy as np
import torch

from liveavatar.engines.diffusion.encoders.audio_features import FEATURE_RATE, HOP, MOTION_RATE, WINDOW
from liveavatar.sizing import AUDIO_SAMPLE_RATE, FPS

CONTEXT_S = 2.0  # past audio each window holds
LOOKAHEAD_S = 0.32  # audio past a block's end that its features wait for


def frames_from_hidden(hidden: torch.Tensor, first_sample: int, start_frame: int, count: int) -> torch.Tensor:
    """wav2vec2 states ``[layers, N50, dim]`` of audio starting at global sample ``first_sample`` ->
    features ``[1, layers, dim, count]`` of video frames ``start_frame ..``, on the exact grid: frame ``i``
    takes the 30 Hz index ``round(1.2 i)`` as offline, i.e. the 50 Hz position ``round(1.2 i) * 5 / 3``
    (offline, the whole-track resampling stretches this by up to a 50 Hz frame or two, with the length)."""
    motion_index = np.round(np.arange(start_frame, start_frame + count) * MOTION_RATE / FPS)
    position = motion_index * FEATURE_RATE / MOTION_RATE - first_sample / HOP  # 50 Hz frames into the window
    position = np.clip(position, 0, hidden.shape[1] - 1)
    lo = np.floor(position).astype(np.int64)
    hi = np.minimum(lo + 1, hidden.shape[1] - 1)
    w = torch.tensor(position - lo, dtype=torch.float32, device=hidden.device).view(1, -1, 1)
    cols = hidden[:, lo].float() * (1 - w) + hidden[:, hi].float() * w  # [layers, count, dim]
    return cols.permute(0, 2, 1).unsqueeze(0)


def whole_track_states(encoder, audio: np.ndarray) -> torch.Tensor:
    """wav2vec2 states of the whole track at once, as the offline path computes them (normalised over
    the track): the reference the sliding window is measured against."""
    from liveavatar.engines.diffusion.encoders.audio_features import wav2vec2_hidden_states

    values = encoder.extractor(audio, sampling_rate=AUDIO_SAMPLE_RATE, return_tensors="pt").input_values[0]
    with torch.no_grad():
        return wav2vec2_hidden_states(values, encoder.model)


class SlidingFeatures:
    """Per-video-frame wav2vec2 features ``[1, layers, dim, n]`` for consecutive blocks of audio.

    ``encoder`` is an ``AudioFeatureEncoder``. Memory is bounded: only ``context_s`` of past audio is
    kept. Also what the block loop reads as its ``audio`` argument: ``features[..., a:b]`` returns the
    columns of the block last fed (the loop asks for exactly those, by global frame index).
    """

    def __init__(
        self,
        encoder,
        context_s: float = CONTEXT_S,
        lookahead_s: float = LOOKAHEAD_S,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.encoder = encoder
        self.context = round(context_s * FEATURE_RATE) * HOP  # a whole number of hops: the offline grid
        self.lookahead_samples = round(lookahead_s * AUDIO_SAMPLE_RATE)
        self.spf = AUDIO_SAMPLE_RATE // FPS
        self.device, self.dtype = device, dtype
        self.past = np.zeros(0, np.float32)
        self.columns: torch.Tensor | None = None
        self.first_column = 0

    def feed(self, audio: np.ndarray, start_frame: int, count: int) -> torch.Tensor:
        """Features of frames ``start_frame .. + count``; ``audio`` holds their samples and the lookahead."""
        shown = audio[: count * self.spf]
        window = np.concatenate([self.past, audio[: count * self.spf + self.lookahead_samples]]).astype(np.float32)
        if len(window) < WINDOW:
            window = np.pad(window, (0, WINDOW - len(window)))
        hidden = self._hidden(window)  # [layers, N50, dim]
        first_sample = start_frame * self.spf - len(self.past)  # global sample index of window[0]
        self.columns = frames_from_hidden(hidden, first_sample, start_frame, count).to(self.device, self.dtype)
        self.first_column = start_frame
        self.past = np.concatenate([self.past, shown])[-self.context :] if self.context else np.zeros(0, np.float32)
        return self.columns

    @torch.no_grad()
    def _hidden(self, window: np.ndarray) -> torch.Tensor:
        from liveavatar.engines.diffusion.encoders.audio_features import wav2vec2_hidden_states

        values = self.encoder.extractor(window, sampling_rate=AUDIO_SAMPLE_RATE, return_tensors="pt").input_values[0]
        return wav2vec2_hidden_states(values, self.encoder.model)

    def __getitem__(self, key) -> torch.Tensor:
        cols = key[-1] if isinstance(key, tuple) else key
        if self.columns is None or not isinstance(cols, slice):
            raise IndexError("the live features hold one block's columns, asked for by a slice")
        a, b = cols.start - self.first_column, cols.stop - self.first_column
        if a < 0 or b > self.columns.shape[-1]:
            raise IndexError(
                f"the block loop asked for frames {cols.start}..{cols.stop}; the live features hold "
                f"{self.first_column}..{self.first_column + self.columns.shape[-1]}"
            )
        return self.columns[..., a:b]
