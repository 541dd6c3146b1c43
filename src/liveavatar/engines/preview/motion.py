"""Eye blinks, idle head motion, speech-coupled nods, and the prompt words that scale them.

All tracks are per video frame and come from a numpy Generator seeded by the plan's seed, so a
plan always gives the same motion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from liveavatar.engines.preview.style import DEFAULT_STYLE, PreviewStyle
from liveavatar.sizing import FPS


@dataclass(frozen=True)
class MotionScales:
    head: float = 1.0
    nod: float = 1.0
    mouth: float = 1.0
    words: tuple[str, ...] = ()


def cue_table(style: PreviewStyle = DEFAULT_STYLE) -> dict[str, tuple[float, float, float]]:
    """word -> (head motion, nods, mouth) multipliers, from the style's prompt cues."""
    return {word: scales for words, scales in style.prompt_cues for word in words.split()}


def prompt_scales(prompt: str, style: PreviewStyle = DEFAULT_STYLE) -> MotionScales:
    """Multiply the scales of every cue word in the prompt (clamped to the style's ranges)."""
    cues = cue_table(style)
    head = nod = mouth = 1.0
    found = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        if word in cues:
            h, n, m = cues[word]
            head, nod, mouth = head * h, nod * n, mouth * m
            found.append(word)
    clamp = lambda x: float(np.clip(x, *style.head_scale_range))  # noqa: E731
    return MotionScales(clamp(head), clamp(nod), float(np.clip(mouth, *style.mouth_scale_range)), tuple(found))


@dataclass(frozen=True)
class MotionTrack:
    """Per-frame motion, float32 arrays of length ``num_frames``."""

    blink: np.ndarray  # eyelid closure 0..1
    yaw: np.ndarray  # head turn, fraction of the face width the nose shifts sideways
    pitch: np.ndarray  # nod, fraction of the face height the face shifts down
    roll: np.ndarray  # head tilt in radians
    tx: np.ndarray  # head shift, fraction of the face width
    ty: np.ndarray  # head shift, fraction of the face height


def blink_track(num_frames: int, rng: np.random.Generator, style: PreviewStyle = DEFAULT_STYLE) -> np.ndarray:
    """A blink every few seconds (the style's ``blink_every``; the first within ``first_blink``)."""
    profile = np.array(style.blink_profile, np.float32)
    out = np.zeros(num_frames, np.float32)
    t = rng.uniform(*style.first_blink)
    while t * FPS < num_frames:
        k = int(t * FPS)
        seg = out[k : k + len(profile)]
        seg[:] = np.maximum(seg, profile[: len(seg)])
        t += rng.uniform(*style.blink_every)
    return out


def smooth_noise(num_frames: int, rng: np.random.Generator, freqs: tuple[float, float] = (0.08, 0.45)) -> np.ndarray:
    """Smooth zero-mean wander in about [-1, 1]: a sum of slow sinusoids with random phases."""
    return wander_at(wander_params(rng, freqs), np.arange(num_frames, dtype=np.float64) / FPS)


def wander_params(rng: np.random.Generator, freqs: tuple[float, float] = (0.08, 0.45)) -> np.ndarray:
    """(frequency, amplitude, phase) of the wander's 4 sinusoids, ``[4, 3]``."""
    out = np.zeros((4, 3))
    for k in range(4):
        out[k] = rng.uniform(*freqs), rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi)
    return out


def wander_at(params: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The wander at times ``t`` (seconds): a function of time alone, so a live session evaluates
    it block by block for as long as it runs, and it never drifts."""
    f, amp, phase = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    return ((amp * np.sin(2 * np.pi * f * t[None, :] + phase)).sum(axis=0) / 2.0).astype(np.float32)


def nod_track(loudness: np.ndarray) -> np.ndarray:
    """Small downward nods at phrase onsets and stressed syllables, smooth (about 0.6 s each)."""
    from scipy.ndimage import gaussian_filter1d

    env = gaussian_filter1d(loudness.astype(np.float64), 2.0)
    onset = np.maximum(np.diff(env, prepend=env[:1]), 0.0)
    peaks = (onset > 0.04) & (onset >= np.roll(onset, 1)) & (onset >= np.roll(onset, -1))
    impulses = np.where(peaks, np.clip(onset * 8, 0, 1), 0.0)
    kernel = np.sin(np.linspace(0, np.pi, 15)) ** 2  # 0.6 s
    nods = np.convolve(impulses, kernel)[: len(loudness)]
    return np.clip(nods, 0, 1.5).astype(np.float32)


def motion_track(
    num_frames: int, loudness: np.ndarray, seed: int, scales: MotionScales, style: PreviewStyle = DEFAULT_STYLE
) -> MotionTrack:
    """Blinks, idle head motion and nods for ``num_frames`` frames, fixed by ``seed``."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    s = style
    blink = blink_track(num_frames, rng, s)
    talking = gaussian_filter1d((loudness > 0.1).astype(np.float64), 12.0).astype(np.float32)
    energy = scales.head * (s.idle_energy + s.talk_energy * talking)
    nods = nod_track(loudness) * scales.nod
    return MotionTrack(
        blink=blink,
        yaw=(s.head_yaw * energy * smooth_noise(num_frames, rng)).astype(np.float32),
        pitch=(s.head_pitch * energy * smooth_noise(num_frames, rng) + s.nod_pitch * nods).astype(np.float32),
        roll=(s.head_roll * energy * smooth_noise(num_frames, rng)).astype(np.float32),
        tx=(s.head_tx * energy * smooth_noise(num_frames, rng, (0.05, 0.25))).astype(np.float32),
        ty=(s.head_ty * energy * smooth_noise(num_frames, rng, (0.05, 0.25))).astype(np.float32),
    )
