"""The preview's mouth and motion tracks made block by block, for live sessions, in constant memory.

Offline (speech.py, motion.py) the tracks are computed over the whole track: phoneme recognition,
levels normalised by the track's percentiles, symmetric smoothing. Live, a frame must be made
when its audio (plus a short lookahead) has arrived, so:
- no recognition: the lip shape comes from the spectral centroid (bright sounds spread the lips,
  dark ones round them), as the offline fallback does for speech that is not English;
- the level's reference and floor, and the centroid's mean and spread, come from bounded rings of
  the last ``HISTORY_S`` seconds of frames instead of the whole track;
- smoothing sees a few past frames and one frame ahead: that frame's 40 ms window reaches
  ``LOOKAHEAD_S`` = 20 ms past the block's audio, the session's lookahead for the preview.
benchmarks/bench_live_mouth.py measures what this loses against the offline mouth.
"""

from __future__ import annotations

import numpy as np

from liveavatar.engines.preview.motion import MotionScales, wander_at, wander_params
from liveavatar.engines.preview.speech import level_span, mouth_opening, scale_loudness, spectral_shape, window_levels
from liveavatar.engines.preview.style import DEFAULT_STYLE, PreviewStyle
from liveavatar.sizing import FPS

WINDOW_S = 0.04  # the level window centred on each frame time (as offline)
LOOKAHEAD_S = WINDOW_S / 2  # the next frame's window ends this far past a block's audio
HISTORY_S = 30.0  # the running level and timbre statistics forget frames older than this
_PAST = 6  # frames of raw values kept for the smoothing filters (3 sigma of the wider one)


class Ring:
    """The last ``size`` values added (a fixed array: memory never grows)."""

    def __init__(self, size: int) -> None:
        self.data = np.zeros(size, np.float32)
        self.count = 0

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float32)[-len(self.data) :]
        pos = self.count % len(self.data)
        first = min(len(values), len(self.data) - pos)
        self.data[pos : pos + first] = values[:first]
        self.data[: len(values) - first] = values[first:]
        self.count += len(values)

    def values(self) -> np.ndarray:
        return self.data[: min(self.count, len(self.data))]


def _smooth(past: np.ndarray, new: np.ndarray, sigma: float, keep: int) -> np.ndarray:
    """Gaussian smoothing of ``new[:keep]`` with ``past`` before it and ``new[keep:]`` after it."""
    from scipy.ndimage import gaussian_filter1d

    both = np.concatenate([past, new])
    return gaussian_filter1d(both, sigma, mode="nearest")[len(past) : len(past) + keep]


class LiveMouth:
    """Audio blocks -> per-frame mouth opening, lip spread and loudness (0..1)."""

    def __init__(self, sample_rate: int) -> None:
        self.sr = sample_rate
        self.spf = sample_rate // FPS
        self.half = int(WINDOW_S * sample_rate / 2)
        self.lookahead_samples = self.half
        frames = int(HISTORY_S * FPS)
        self.levels, self.audible, self.timbre = Ring(frames), Ring(frames), Ring(frames)
        self.tail = np.zeros(self.half, np.float32)  # the last shown samples (the first window's left half)
        self.past_open = np.zeros(0, np.float32)
        self.past_centroid = np.zeros(0, np.float32)

    def step(self, audio: np.ndarray, speech: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(open, spread, loudness)`` for ``n = len(speech)`` frames; ``audio`` holds their
        ``n * spf`` samples plus ``lookahead_samples`` more."""
        n = len(speech)
        buf = np.concatenate([self.tail, audio[: n * self.spf + self.half]])
        centres = self.half + np.arange(n + 1) * self.spf  # the block's frames and the next one
        db, centroid = window_levels(buf, self.sr, centres, WINDOW_S)
        self.levels.add(db[:n])
        self.audible.add(db[:n][db[:n] > -70])
        span = level_span(self.levels.values(), self.audible.values())
        loud = np.zeros(n + 1, np.float32) if span is None else scale_loudness(db, *span)
        smooth_c = _smooth(self.past_centroid, centroid, 1.5, n + 1)
        logc = np.log(np.maximum(smooth_c, 50.0))
        self.timbre.add(logc[:n][loud[:n] > 0.2])
        known = self.timbre.values()
        mean, std = (float(known.mean()), float(known.std())) if known.size > 3 else (0.0, np.inf)
        open_raw, spread = mouth_opening(spectral_shape(logc, loud, mean, std), loud)
        open_ = _smooth(self.past_open, open_raw, 0.7, n)
        open_[loud[:n] <= 0.0] = 0.0
        open_[~speech] = 0.0
        loud = np.where(speech, loud[:n], 0.0).astype(np.float32)
        self.past_open = np.concatenate([self.past_open, open_raw[:n]])[-_PAST:]
        self.past_centroid = np.concatenate([self.past_centroid, centroid[:n]])[-_PAST:]
        self.tail = buf[n * self.spf : n * self.spf + self.half].copy()
        return np.clip(open_, 0, 1).astype(np.float32), np.clip(spread[:n], -1, 1).astype(np.float32), loud


class LiveMotion:
    """Blinks, head wander and speech nods frame by frame from a seed (offline: motion.motion_track)."""

    def __init__(self, seed: int, scales: MotionScales, style: PreviewStyle = DEFAULT_STYLE) -> None:
        rng = np.random.default_rng(seed)
        self.style, self.scales = style, scales
        slow, shift = (0.08, 0.45), (0.05, 0.25)
        self.wander = [wander_params(rng, f) for f in (slow, slow, slow, shift, shift)]  # yaw pitch roll tx ty
        self.blink_rng = np.random.default_rng(rng.integers(2**63))
        self.profile = np.array(style.blink_profile, np.float32)
        self.next_blink = int(self.blink_rng.uniform(*style.first_blink) * FPS)
        self.blink_at = -len(self.profile)  # frame where the current blink started
        self.talking = 0.0  # smoothed share of recent frames with speech (offline: a 12-frame gaussian)
        self.env = 0.0  # smoothed loudness, for nod onsets
        self.onsets = np.zeros(2, np.float32)  # the last two onset values (peaks are found one frame late)
        self.nods = np.zeros(15, np.float32)  # nod shape still to come, from the frame being made on

    def step(self, loud: np.ndarray, start_frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(blink [n], head [n, 5] as yaw, pitch, roll, tx, ty)`` for frames ``start_frame ..``."""
        s, n = self.style, len(loud)
        blink, talking, nods = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        kernel = np.sin(np.linspace(0, np.pi, 15)) ** 2  # a 0.6 s nod
        for j in range(n):
            i = start_frame + j
            if i >= self.next_blink:
                self.blink_at = i
                self.next_blink = i + int(self.blink_rng.uniform(*s.blink_every) * FPS)
            k = i - self.blink_at
            blink[j] = self.profile[k] if 0 <= k < len(self.profile) else 0.0
            self.talking += (float(loud[j] > 0.1) - self.talking) / 12.0
            talking[j] = self.talking
            env = self.env + 0.35 * (float(loud[j]) - self.env)
            onset = max(env - self.env, 0.0)
            self.env = env
            a, b = self.onsets  # frame i-2, i-1: b is a peak when it rises over a and is not passed now
            if b > 0.04 and b >= a and b >= onset:
                self.nods += min(b * 8, 1.0) * kernel
            self.onsets = np.array([b, onset], np.float32)
            nods[j] = self.nods[0]
            self.nods = np.roll(self.nods, -1)
            self.nods[-1] = 0.0
        t = np.arange(start_frame, start_frame + n, dtype=np.float64) / FPS
        energy = self.scales.head * (s.idle_energy + s.talk_energy * talking)
        amps = (s.head_yaw, s.head_pitch, s.head_roll, s.head_tx, s.head_ty)
        head = np.stack([a * energy * wander_at(p, t) for a, p in zip(amps, self.wander)], axis=1)
        head[:, 1] += s.nod_pitch * np.clip(nods, 0, 1.5) * self.scales.nod
        self.last_blink, self.last_head = blink, head  # the last block's, for benchmarks (replaced each block)
        return blink, head.astype(np.float32)
