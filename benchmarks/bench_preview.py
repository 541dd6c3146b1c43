"""Preview engine speed and memory: set-up time, one-core render rate, RSS over 10 minutes of audio.

Run: .venv/bin/python benchmarks/bench_preview.py [--long-minutes 10]
Inputs are made here: the astronaut portrait (scikit-image) and espeak-ng speech with pauses.
"""

from __future__ import annotations

import argparse
import math
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

# the speech synthesiser is a test helper (tests/support), not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SR = 16_000


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def speech_clip(seconds: float) -> np.ndarray:
    from scipy.signal import resample_poly

    from support.speech_synth import synthesize

    lines = [
        "hello, my name is ava and I fly space shuttles",
        "we went to the moon and came back home",
        "please remember to bring your passport",
        "the quick brown fox jumps over the lazy dog",
    ]
    pieces, total = [], 0
    k = 0
    while total < seconds * SR:
        x, rate = synthesize(lines[k % len(lines)])
        g = math.gcd(rate, SR)
        x = resample_poly(x, SR // g, rate // g).astype(np.float32)
        pieces += [x, np.zeros(int(0.7 * SR), np.float32)]
        total += len(x) + int(0.7 * SR)
        k += 1
    return np.concatenate(pieces)[: int(seconds * SR)]


def plan_for(audio: np.ndarray, size: int = 512, frames_per_clip: int = 48):
    from liveavatar.config import Plan

    n = math.ceil(len(audio) / SR * 25 - 1e-9)
    return Plan(
        engine="preview",
        height=size,
        width=size,
        fps=25,
        frames_per_clip=frames_per_clip,
        num_clips=math.ceil(n / frames_per_clip),
        num_frames=n,
        sample_steps=4,
        sample_shift=3.0,
        seed=420,
        prompt="",
        enable_online_decode=True,
    )


def main() -> None:
    import cv2
    from skimage import data

    from liveavatar.engines.base import Inputs
    from liveavatar.engines.preview import PreviewEngine

    ap = argparse.ArgumentParser()
    ap.add_argument("--long-minutes", type=float, default=10.0, help="audio length for the memory run (0 to skip)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.system()}, python {platform.python_version()}; cv2 threads 1"
    )
    image = data.astronaut()
    audio = speech_clip(10.0)
    inputs = Inputs("", image, audio, SR, Path("astronaut.png"), Path("speech.wav"))
    plan = plan_for(audio)
    engine = PreviewEngine()
    engine.prepare(inputs, plan, lambda m: None)  # warm the libraries (first import, model load)
    t = time.perf_counter()
    renderer, tracks = engine.prepare(inputs, plan, print)
    setup = time.perf_counter() - t
    print(f"set-up for a 10 s clip (landmarks, phonemes, tracks, fields): {setup:.2f} s")
    t = time.perf_counter()
    for i in range(len(tracks)):
        renderer.render(tracks.params(i))
    dt = time.perf_counter() - t
    print(
        f"render 512x512, one core: {len(tracks) / dt:.1f} frames/s ({1000 * dt / len(tracks):.2f} ms/frame, {len(tracks)} frames)"
    )
    if args.long_minutes > 0:
        long_audio = speech_clip(args.long_minutes * 60)
        inputs = Inputs("", image, long_audio, SR, Path("astronaut.png"), Path("speech.wav"))
        plan = plan_for(long_audio)
        start_rss = rss_mb()
        print(
            f"long run: {args.long_minutes:g} min of audio, {plan.num_frames} frames; RSS before {start_rss:.0f} MB (audio itself {long_audio.nbytes / 2**20:.0f} MB)"
        )
        t = time.perf_counter()
        frames = 0
        peak = start_rss
        for k, block in enumerate(engine.generate(inputs, plan, print)):
            frames += len(block)
            if k % 50 == 0:
                peak = max(peak, rss_mb())
                print(f"  clip {k:4d}: {frames:6d} frames, RSS {rss_mb():.0f} MB, {time.perf_counter() - t:.0f} s")
        peak = max(peak, rss_mb())
        total = time.perf_counter() - t
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"long run done: {frames} frames in {total:.0f} s ({frames / total:.0f} frames/s incl. set-up); RSS sampled peak {peak:.0f} MB, ru_maxrss {max_rss:.0f} MB"
        )


if __name__ == "__main__":
    main()
