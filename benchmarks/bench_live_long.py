"""A long live preview session: does minute 30 look like minute 1, in constant memory?

Run: PYTHONPATH=src .venv/bin/python benchmarks/bench_live_long.py [--minutes 30] [--size 512*512] [--out output/live_long]

The session is driven as a transport would (the speech pushed a block at a time, as it is played):
samples/speech.wav (12.9 s) then 5 s of listening, over and over. Per minute of the timeline it prints the
process's resident memory, the bytes of the session's own state (arrays and containers reachable from it),
and what the avatar did: mean mouth opening while speaking, share of listening frames with the mouth at
rest, head motion (std of yaw and pitch), blinks per minute; wall seconds per minute of video. The first
and last minutes' frames at the same point of the cycle are written to --out for a look.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "live"))
SR, SPF = 16_000, 640


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    from PIL import Image
    from test_preview_tracks import state_size

    from liveavatar.config import GenerateConfig
    from liveavatar.engines.base import SessionInputs
    from liveavatar.engines.preview import PreviewEngine
    from liveavatar.live.session import session_plan
    from liveavatar.media.audio import read_audio
    from liveavatar.media.image import read_image

    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--size", default="512*512")
    ap.add_argument("--out", type=Path, default=REPO / "output" / "live_long")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    image = read_image(REPO / "samples" / "portrait.png")
    config = GenerateConfig(
        image=REPO / "samples" / "portrait.png", audio=Path("live"), prompt="a woman talking", size=args.size
    ).resolve()
    session = PreviewEngine().open_session(
        SessionInputs("a woman talking", image), session_plan(config, image, "preview"), lambda m: None
    )
    speech = read_audio(REPO / "samples" / "speech.wav")
    cycle = len(speech) // SPF + 125  # frames per cycle: the speech, then 5 s of listening
    per_block = session.block_frames * SPF
    print(
        f"# {platform.node()} ({platform.processor() or 'cpu'}), preview {session.width}*{session.height}, "
        f"{args.minutes} min of timeline"
    )
    print(
        "| minute | RSS MB | state bytes | open while speaking | listening at rest | head yaw std | head pitch std | blinks | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    frames_per_minute = 60 * 25
    pos = len(speech)  # nothing pushed yet of the current cycle
    t0 = time.perf_counter()
    for minute in range(args.minutes):
        opens, speaking, heads, blinks = [], [], [], []
        while session.frames_made < (minute + 1) * frames_per_minute:
            in_cycle = session.frames_made % cycle
            if in_cycle == 0:
                pos = 0
            if pos < len(speech):  # push what the next block plays, as a TTS in real time would
                session.push_audio(speech[pos : pos + per_block])
                pos += per_block
                if pos >= len(speech):
                    session.end_of_speech()
            block = session.next_block()
            m = session.maker
            opens.extend(m.last_open)
            speaking.extend([block.speaking] * len(block.frames))
            heads.append(m.motion.last_head if hasattr(m.motion, "last_head") else np.zeros((len(block.frames), 5)))
            blinks.extend(m.motion.last_blink if hasattr(m.motion, "last_blink") else [0.0] * len(block.frames))
            if in_cycle == 300 and minute in (0, args.minutes - 1):
                Image.fromarray(block.frames[0]).save(args.out / f"minute{minute + 1:02d}.png")
        session.poll_events()
        opens, speaking, head = np.array(opens), np.array(speaking), np.concatenate(heads)
        blink_count = int((np.diff((np.array(blinks) > 0.5).astype(int)) == 1).sum())
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        print(
            f"| {minute + 1} | {rss_mb():.0f} | {state_size(session)} | {opens[speaking].mean():.3f} | "
            f"{(opens[~speaking] < 0.02).mean():.3f} | {head[:, 0].std():.5f} | {head[:, 1].std():.5f} | "
            f"{blink_count} | {wall:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
