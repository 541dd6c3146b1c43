"""Live (sliding window) wav2vec2 features against the offline whole-track ones, on the tiny checkpoint.

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_live_features.py [--ckpt DIR] [--audio samples/speech.wav]
(without --ckpt a tiny release is written to a temporary folder: `liveavatar tiny-checkpoint DIR` makes the same).

The session computes the features of each 12-frame block from a window of `context` seconds before the
block, the block, and `lookahead` seconds after it (engines/diffusion/encoders/audio_window.py). Two references:
"offline" = AudioFeatureEncoder.encode over the whole track (what `generate` feeds the DiT), and "same
grid" = the whole track's wav2vec2 states taken on the live path's exact 25 fps grid: the offline path's
50 -> 30 Hz resampling stretches time by the track's length (up to a 50 Hz frame or two), which the
live path cannot know, so "same grid" isolates what the window itself changes. Printed: the relative L2
difference ||live - ref|| / ||ref|| over all frames and all 25 hidden states, the same for the last layer,
and the mean per-frame cosine similarity. The tiny wav2vec2 has random
weights (hidden size 32): the figures show how windowing changes the features, not what the 1 GB
XLSR-53 model would give.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def live_features(encoder, audio: np.ndarray, num_frames: int, context_s: float, lookahead_s: float):
    import torch

    from liveavatar.engines.diffusion.encoders.audio_window import SlidingFeatures

    f = SlidingFeatures(encoder, context_s=context_s, lookahead_s=lookahead_s)
    padded = np.concatenate([audio, np.zeros(num_frames * 640 + f.lookahead_samples, np.float32)])
    out = []
    for start in range(0, num_frames, 12):
        out.append(f.feed(padded[start * 640 : (start + 12) * 640 + f.lookahead_samples], start, 12))
    return torch.cat(out, dim=-1)[..., :num_frames]


def compare(live, offline) -> tuple[float, float, float]:
    import torch

    a, b = live.float().flatten(1, 2), offline.float().flatten(1, 2)  # [1, layers*dim, frames]
    rel = float((a - b).norm() / b.norm())
    last = float((live[:, -1] - offline[:, -1]).float().norm() / offline[:, -1].float().norm())
    cos = float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())
    return rel, last, cos


def main() -> None:
    import torch

    from liveavatar.engines.diffusion.encoders.audio_features import AudioFeatureEncoder
    from liveavatar.engines.diffusion.loading.layout import resolve_layout
    from liveavatar.media.audio import read_audio
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path)
    ap.add_argument("--audio", type=Path, default=REPO / "samples" / "speech.wav")
    args = ap.parse_args()
    tmp = None
    if args.ckpt is None:
        tmp = tempfile.TemporaryDirectory()
        args.ckpt, _ = write_tiny_checkpoint(Path(tmp.name))
    torch.manual_seed(0)
    encoder = AudioFeatureEncoder.from_folder(resolve_layout(args.ckpt, None).wav2vec, dtype=torch.float32)
    audio = read_audio(args.audio)
    n = int(len(audio) / 16_000 * 25)
    from liveavatar.engines.diffusion.encoders.audio_window import frames_from_hidden, whole_track_states

    offline = encoder.encode(audio, n)
    same_grid = frames_from_hidden(whole_track_states(encoder, audio), 0, 0, n)
    print(
        f"# {platform.node()} ({platform.processor() or 'cpu'}), {args.audio.name} ({len(audio) / 16000:.1f} s, "
        f"{n} frames), tiny wav2vec2 from {args.ckpt}"
    )
    rel, _, cos = compare(same_grid, offline)
    print(
        f"offline vs the same states on the exact grid (the stretch alone): rel. L2 {rel:.4f}, cosine {cos:.4f}; "
        f"neighbouring frames differ by rel. L2 {compare(offline[..., 1:], offline[..., :-1])[0]:.4f}"
    )
    print(
        "| context s | lookahead s | vs same grid: rel. L2 (all layers) | (last layer) | cosine | vs offline: rel. L2 | cosine |"
    )
    print("|---|---|---|---|---|---|---|")
    for context, lookahead in (
        (0.5, 0.08),
        (1.0, 0.16),
        (2.0, 0.16),
        (2.0, 0.32),
        (2.0, 0.64),
        (4.0, 0.32),
        (4.0, 1.0),
    ):
        live = live_features(encoder, audio, n, context, lookahead)
        rel, last, cos = compare(live, same_grid)
        rel_off, _, cos_off = compare(live, offline)
        print(
            f"| {context:g} | {lookahead:g} | {rel:.4f} | {last:.4f} | {cos:.4f} | {rel_off:.4f} | {cos_off:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
