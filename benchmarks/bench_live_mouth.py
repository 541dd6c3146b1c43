"""What the live preview mouth loses against the offline one, on the same speech, measured on the frames.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_live_mouth.py [--audio samples/speech.wav] [--image samples/portrait.png]

The offline preview analyses the whole track (phoneme recognition with pocketsphinx, levels normalised by
the track's percentiles, symmetric smoothing); the live session (engines/preview/live_tracks.py) sees each
block's audio plus 20 ms, no recognition (lip shape from the spectral centroid), running level statistics.
Both render the same portrait at the same size from the same speech with 1 s of silence before and after.
Measured on the OUTPUT frames with FaceMesh (tests/support/preview_quality.py): r = correlation of the inner-lip
gap with the loudness envelope (lag 0, and the best lag in frames), "pauses closed" = share of the frames in
silent stretches > 0.2 s (below -45 dBFS) whose mouth is within 0.02 face heights of the engine's rest frame,
and the correlation between the two mouths' openings.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SR = 16_000


def offline(image, audio, plan):
    from liveavatar.engines.base import Inputs
    from liveavatar.engines.preview import PreviewEngine

    inputs = Inputs(
        prompt=plan.prompt, image=image, audio=audio, sample_rate=SR, image_path=Path("p.png"), audio_path=Path("s.wav")
    )
    return np.concatenate(list(PreviewEngine().generate(inputs, plan, lambda m: None)))


def live(image, audio, plan):
    from liveavatar.engines.base import SessionInputs
    from liveavatar.engines.preview import PreviewEngine

    s = PreviewEngine().open_session(SessionInputs(plan.prompt, image), plan, lambda m: None)
    blocks, spf, per = [], SR // 25, 2 * SR // 25
    for lo in range(0, len(audio), per):  # pushed in real time: a block's audio per block
        s.push_audio(audio[lo : lo + per])
        if lo + per >= len(audio):
            s.end_of_speech()
        blocks.append(s.next_block())
    while sum(len(b.frames) for b in blocks) * spf < len(audio) + 2 * per:
        blocks.append(s.next_block())
    first = next(b.start_frame for b in blocks if b.speaking)  # the utterance starts on a block boundary
    frames = np.concatenate([b.frames for b in blocks])[first:]
    played = np.concatenate([b.audio for b in blocks])[first * spf :]
    assert np.array_equal(played[: len(audio)], audio), "the live audio is not the speech pushed"
    return frames, s.maker.renderer


def measure(frames, audio, rest):
    from support import preview_quality as Q

    n = min(len(frames), len(audio) // (SR // 25))
    lms = Q.landmarks_per_frame(frames[:n])
    opening = np.array([Q.mouth_opening(lm) if lm is not None else np.nan for lm in lms])
    env = Q.loudness_envelope(audio, SR, n)
    r0, lag, r_best = Q.lagged_correlation(np.nan_to_num(opening), env)
    pauses = Q.pause_frames(audio, SR, n, min_s=0.2, floor_db=-45)
    return {
        "r": r0,
        "lag": lag,
        "r_best": r_best,
        "closed": Q.rest_share(opening, pauses, rest=rest),
        "pauses": int(pauses.sum()),
        "opening": opening,
    }


def main() -> None:
    from liveavatar.config import GenerateConfig
    from liveavatar.live.session import session_plan
    from liveavatar.media.audio import read_audio
    from liveavatar.media.image import read_image
    from support import preview_quality as Q

    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", type=Path, default=REPO / "samples" / "speech.wav")
    ap.add_argument("--image", type=Path, default=REPO / "samples" / "portrait.png")
    ap.add_argument("--size", default="512*512")
    args = ap.parse_args()
    image = read_image(args.image)
    speech = read_audio(args.audio)
    audio = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    config = GenerateConfig(image=args.image, audio=args.audio, prompt="a woman talking", size=args.size).resolve()
    plan = session_plan(config, image, "preview")
    plan = type(plan)(
        **{
            **plan.__dict__,
            "num_frames": int(np.ceil(len(audio) / SR * 25)),
            "num_clips": 1,
            "frames_per_clip": int(np.ceil(len(audio) / SR * 25 / 4)) * 4,
        }
    )
    t = time.perf_counter()
    off_frames = offline(image, audio, plan)
    t_off = time.perf_counter() - t
    t = time.perf_counter()
    live_frames, renderer = live(image, audio, plan)
    t_live = time.perf_counter() - t
    rest = Q.rest_opening(renderer)
    a = measure(off_frames, audio, rest)
    b = measure(live_frames, audio, rest)
    n = min(len(a["opening"]), len(b["opening"]))
    agree = float(np.corrcoef(np.nan_to_num(a["opening"][:n]), np.nan_to_num(b["opening"][:n]))[0, 1])
    print(
        f"# {platform.node()} {platform.machine()} ({platform.processor() or 'cpu'}), {args.audio.name} "
        f"+ 1 s silence each side, {plan.width}*{plan.height}"
    )
    print("| mouth | r (lag 0) | best lag (frames) | r at best lag | pauses closed | pause frames | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, m, t in (("offline (phonemes)", a, t_off), ("live (20 ms lookahead)", b, t_live)):
        print(
            f"| {name} | {m['r']:.3f} | {m['lag']} | {m['r_best']:.3f} | {m['closed']:.2f} | {m['pauses']} | {t:.1f} |"
        )
    print(f"correlation of the two mouths' openings: {agree:.3f}")


if __name__ == "__main__":
    main()
