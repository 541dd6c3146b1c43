"""Preview engine on hard portraits: lip sync, rest in pauses, mouth artifacts, contact sheets.

Run: .venv/bin/python benchmarks/bench_preview_corpus.py [--out output/preview_corpus] [--no-upstream]
The corpus is tests/preview/corpus.py (astronaut variants made on the spot, plus the upstream example
portraits when ../shared sits beside the checkout). Every measure is taken on the OUTPUT frames with
FaceMesh (tests/support/preview_quality.py); "at rest" is against the mesh's reading of the engine's own rest
frame (in brackets: against the video's 5th-percentile opening, the older measure); "folded" is the
largest share of the mouth's area whose warp triangles turn inside out at openings 0, 0.5 and 1.
The sheets and mouth close-ups are written to --out.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "preview"))
sys.path.insert(0, str(REPO / "tests"))  # tests/support: speech synthesis and the quality measures
SR = 16_000


def speech_with_pauses() -> np.ndarray:
    from scipy.signal import resample_poly

    from support.speech_synth import synthesize

    parts = [np.zeros(int(0.5 * SR), np.float32)]
    for text, pause in (
        ("hello, my name is ava and I fly space shuttles", 0.8),
        ("we went to the moon and came back home", 1.0),
    ):
        x, rate = synthesize(text)
        g = math.gcd(rate, SR)
        parts += [resample_poly(x, SR // g, rate // g).astype(np.float32), np.zeros(int(pause * SR), np.float32)]
    return np.concatenate(parts)


def plan_size(image: np.ndarray, long_side: int) -> tuple[int, int]:
    h, w = image.shape[:2]
    s = long_side / max(h, w)
    return int(h * s) // 16 * 16, int(w * s) // 16 * 16


def measure(name: str, image: np.ndarray, audio: np.ndarray, long_side: int, out: Path | None) -> dict:
    import cv2
    from helpers import make_inputs, make_plan

    from liveavatar.engines.preview import PreviewEngine
    from liveavatar.errors import UserError
    from liveavatar.media.image import fit_to_size
    from support import preview_quality as Q

    h, w = plan_size(image, long_side)
    plan = make_plan(audio, h, w)
    notes: list[str] = []
    engine = PreviewEngine()
    try:
        renderer, _ = engine.prepare(make_inputs(image, audio), plan, notes.append)
    except UserError as exc:
        return {"name": name, "error": exc.message}
    frames = np.concatenate(list(engine.generate(make_inputs(image, audio), plan, lambda m: None)))
    portrait = fit_to_size(image, h, w)
    ref = Q.landmarks_per_frame([portrait])[0]
    lms = Q.landmarks_per_frame(frames)
    found = [lm is not None for lm in lms]
    row = {
        "name": name,
        "size": f"{w}x{h}",
        "mode": renderer.mode,
        "notes": [n for n in notes if n.startswith("note: the preview moves")],
        "kind": None,
        "faces": float(np.mean(found)),
    }
    from liveavatar.engines.preview.face import find_face

    row["kind"] = find_face(image, h, w, lambda m: None).mouth.kind
    if all(found) and ref is not None:
        opening = np.array([Q.mouth_opening(lm) for lm in lms])
        env = Q.loudness_envelope(audio, SR, len(frames))
        r0, lag, _ = Q.lagged_correlation(opening, env)
        pauses = Q.pause_frames(audio, SR, len(frames), min_s=0.5)
        rest_gap = Q.rest_opening(renderer)
        row.update(
            r=r0,
            lag=lag,
            rest=Q.rest_share(opening, pauses, rest=rest_gap),
            rest_gap=rest_gap,
            rest_p5=Q.rest_share(opening, pauses),
            artifact=Q.mouth_artifact_ratio(frames, portrait, ref),
            artifact_rest=Q.mouth_artifact_ratio(frames[pauses], portrait, ref, q=50),
        )
    if renderer.mode == "lips":
        from liveavatar.engines.preview import lips

        keep = renderer.painter.rest_gap > 0
        row["folded"] = max(
            lips.folded_share(renderer.g, lips.jaw_offsets(renderer.g, a, renderer.style, keep))
            for a in (0.0, 0.5, 1.0)
        )
    if out is not None:
        lm = ref if ref is not None else None
        picks = np.linspace(0, len(frames) - 1, 8).astype(int)
        scale = 180 / max(h, w)
        sheet = np.concatenate(
            [cv2.resize(frames[i], (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA) for i in picks], 1
        )
        if lm is not None:
            ys, xs = Q.mouth_region(lm, (h, w), margin=0.5)
            opening = [0] if not all(found) else np.array([Q.mouth_opening(x) for x in lms])
            order = np.argsort(opening)
            chosen = [0] + [int(order[k]) for k in (len(order) // 2, len(order) * 9 // 10, len(order) - 1)]
            crops = [cv2.resize(portrait[ys, xs], (160, 120), interpolation=cv2.INTER_CUBIC)]
            crops += [cv2.resize(frames[i][ys, xs], (160, 120), interpolation=cv2.INTER_CUBIC) for i in chosen]
            closeup = np.concatenate(crops, 1)
            from PIL import Image

            Image.fromarray(closeup).save(out / f"{name}_mouth.png")
        from PIL import Image

        Image.fromarray(sheet).save(out / f"{name}_sheet.png")
    return row


def main() -> None:
    import corpus
    import cv2

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "output" / "preview_corpus")
    ap.add_argument("--no-upstream", action="store_true")
    ap.add_argument("--long-side", type=int, default=640)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.system()}, python {platform.python_version()}"
    )
    audio = speech_with_pauses()
    print(
        "| portrait | size | mouth | mode | r (lag) | rest frame's gap | at rest in pauses (vs 5th pct) | artifact p95 | artifact in pauses | folded |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, image in corpus.corpus(not args.no_upstream).items():
        m = measure(name, image, audio, args.long_side, args.out)
        if "error" in m:
            print(f"| {name} | | | refused: {m['error']} | | | | | | |")
            continue
        if "r" not in m:
            print(
                f"| {name} | {m['size']} | {m['kind']} | {m['mode']} | mesh lost in {1 - m['faces']:.0%} of frames | | | | | |"
            )
            continue
        gap = "n/a" if m["rest_gap"] is None else f"{m['rest_gap']:.3f}"
        folded = f"{m['folded']:.3f}" if "folded" in m else "-"
        print(
            f"| {name} | {m['size']} | {m['kind']} | {m['mode']} | {m['r']:.2f} ({m['lag']:+d}) | {gap} | {m['rest']:.0%} ({m['rest_p5']:.0%}) "
            f"| {m['artifact']:.2f} | {m['artifact_rest']:.2f} | {folded} |"
        )


if __name__ == "__main__":
    main()
