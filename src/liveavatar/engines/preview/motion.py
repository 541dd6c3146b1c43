"""Eye blinks, idle head motion, speech-coupled nods, and the prompt words that scale them.

All tracks are per video frame and come from a numpy Generator seeded by the plan's seed, so a
plan always gives the same motion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from liveavatar.sizing import FPS

# word -> (head motion, nods, mouth) multipliers; see docs/preview.md.
CUES: dict[str, tuple[float, float, float]] = {}
for _words, _scales in (
    ("calm calmly relaxed gentle gently soft softly serene quiet quietly peaceful composed", (0.6, 0.6, 0.85)),
    ("still motionless steady", (0.3, 0.4, 1.0)),
    ("serious stern formal", (0.7, 0.7, 0.95)),
    ("enthusiastic enthusiastically excited excitedly energetic lively animated passionate passionately cheerful joyful expressive", (1.6, 1.5, 1.15)),
    ("nod nods nodding", (1.0, 2.0, 1.0)),
    ("whisper whispers whispering murmuring", (0.7, 0.7, 0.7)),
    ("shout shouts shouting yelling loud loudly", (1.3, 1.4, 1.25)),
    ("singing sings", (1.2, 1.0, 1.1)),
):
    for _w in _words.split():
        CUES[_w] = _scales


@dataclass(frozen=True)
class MotionScales:
    head: float = 1.0
    nod: float = 1.0
    mouth: float = 1.0
    words: tuple[str, ...] = ()


def prompt_scales(prompt: str) -> MotionScales:
    """Multiply the scales of every cue word in the prompt (clamped to 0.2..2.5)."""
    head = nod = mouth = 1.0
    found = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        if word in CUES:
            h, n, m = CUES[word]
            head, nod, mouth = head * h, nod * n, mouth * m
            found.append(word)
    clamp = lambda x: float(np.clip(x, 0.2, 2.5))  # noqa: E731
    return MotionScales(clamp(head), clamp(nod), float(np.clip(mouth, 0.5, 1.4)), tuple(found))


@dataclass(frozen=True)
class MotionTrack:
    """Per-frame motion, float32 arrays of length ``num_frames``."""

    blink: np.ndarray  # eyelid closure 0..1
    yaw: np.ndarray  # head turn, fraction of the face width the nose shifts sideways
    pitch: np.ndarray  # nod, fraction of the face height the face shifts down
    roll: np.ndarray  # head tilt in radians
    tx: np.ndarray  # head shift, fraction of the face width
    ty: np.ndarray  # head shift, fraction of the face height


BLINK_PROFILE = np.array([0.55, 1.0, 0.6, 0.2], np.float32)  # 160 ms at 25 fps


def blink_track(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A blink every 2-6 s (first one within 0.5-3 s), each ~150 ms."""
    out = np.zeros(num_frames, np.float32)
    t = rng.uniform(0.5, 3.0)
    while t * FPS < num_frames:
        k = int(t * FPS)
        seg = out[k : k + len(BLINK_PROFILE)]
        seg[:] = np.maximum(seg, BLINK_PROFILE[: len(seg)])
        t += rng.uniform(2.0, 6.0)
    return out


def smooth_noise(num_frames: int, rng: np.random.Generator, freqs: tuple[float, float] = (0.08, 0.45)) -> np.ndarray:
    """Smooth zero-mean wander in about [-1, 1]: a sum of slow sinusoids with random phases."""
    t = np.arange(num_frames, dtype=np.float64) / FPS
    out = np.zeros(num_frames)
    for _ in range(4):
        f = rng.uniform(*freqs)
        out += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return (out / 2.0).astype(np.float32)


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


def motion_track(num_frames: int, loudness: np.ndarray, seed: int, scales: MotionScales) -> MotionTrack:
    """Blinks, idle head motion and nods for ``num_frames`` frames, fixed by ``seed``."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    blink = blink_track(num_frames, rng)
    talking = gaussian_filter1d((loudness > 0.1).astype(np.float64), 12.0).astype(np.float32)
    energy = scales.head * (0.6 + 0.6 * talking)
    nods = nod_track(loudness) * scales.nod
    return MotionTrack(
        blink=blink,
        yaw=(0.025 * energy * smooth_noise(num_frames, rng)).astype(np.float32),
        pitch=(0.012 * energy * smooth_noise(num_frames, rng) + 0.02 * nods).astype(np.float32),
        roll=(0.02 * energy * smooth_noise(num_frames, rng)).astype(np.float32),
        tx=(0.012 * energy * smooth_noise(num_frames, rng, (0.05, 0.25))).astype(np.float32),
        ty=(0.006 * energy * smooth_noise(num_frames, rng, (0.05, 0.25))).astype(np.float32),
    )
