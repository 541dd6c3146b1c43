"""Inputs and plans for the preview tests, made on the spot (no files from outside the repo)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from liveavatar.config import Plan
from liveavatar.engines.base import Inputs
from liveavatar.sizing import FPS

SR = 16_000


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def speech(text: str, voice: str = "en-us", **kwargs) -> np.ndarray:
    """espeak-ng speech as float32 mono at 16 kHz."""
    from scipy.signal import resample_poly

    from support.speech_synth import synthesize

    x, rate = synthesize(text, voice=voice, **kwargs)
    g = math.gcd(rate, SR)
    return resample_poly(x, SR // g, rate // g).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def phrases_with_pauses() -> np.ndarray:
    """Three spoken phrases separated by pauses of 0.8 s and 1.0 s (plus lead-in and tail)."""
    return np.concatenate(
        [
            silence(0.5),
            speech("hello, my name is ava and I fly space shuttles"),
            silence(0.8),
            speech("we went to the moon and came back home"),
            silence(1.0),
            speech("please remember to bring your passport"),
            silence(0.6),
        ]
    )


def make_inputs(image: np.ndarray, audio: np.ndarray, prompt: str = "", transcript: str | None = None) -> Inputs:
    return Inputs(
        prompt=prompt,
        image=image,
        audio=audio,
        sample_rate=SR,
        image_path=Path("portrait.png"),
        audio_path=Path("speech.wav"),
        transcript=transcript,
    )


def make_plan(
    audio: np.ndarray, height: int = 512, width: int = 512, frames_per_clip: int = 48, seed: int = 420, prompt: str = ""
) -> Plan:
    num_frames = max(1, math.ceil(len(audio) / SR * FPS - 1e-9))
    clips = math.ceil(num_frames / frames_per_clip)
    return Plan(
        engine="preview",
        height=height,
        width=width,
        fps=FPS,
        frames_per_clip=frames_per_clip,
        num_clips=clips,
        num_frames=num_frames,
        sample_steps=4,
        sample_shift=3.0,
        seed=seed,
        prompt=prompt,
        enable_online_decode=True,
    )
