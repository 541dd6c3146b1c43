"""Resume on the tiny diffusion release, CPU: what the records cost per clip, what resuming costs,
and why the replay starts at block 0 (a replay of the ring window only is not exact).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_resume.py --clips 6 --size "64*64" --infer_frames 24

Times are CPU seconds of this process (time.process_time: the machine is shared, so wall time
mostly measures the neighbours); a warm-up run comes first. Prints, for one uninterrupted run: seconds per clip, the time spent at segment ends (encoder
flush and restart, fsync of the MP4, the record's write-fsync-rename) as a share of it, and the
record's size; then, for runs interrupted after k clips: the time a resumed run takes before its
first new frame (replay of k clips + copy of their packets), in clips' worth of time; last, the
largest difference a window-only replay leaves in the next block's latents.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--size", default="64*64")
    parser.add_argument("--infer_frames", type=int, default=24)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--at", default="1,3,5", help="clips finished when the run is interrupted")
    args = parser.parse_args()

    import soundfile as sf
    import torch
    from PIL import Image

    from liveavatar import pipeline, resume
    from liveavatar.config import GenerateConfig
    from liveavatar.engines import select
    from liveavatar.media.writer import VideoWriter
    from liveavatar.tools.tiny_checkpoint import write_tiny_checkpoint

    root = Path(tempfile.mkdtemp())
    ckpt, lora = write_tiny_checkpoint(root / "release")
    seconds = args.clips * args.infer_frames / 25
    t = np.arange(int(seconds * 16000)) / 16000
    sf.write(
        str(root / "a.wav"),
        (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32),
        16000,
    )
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(root / "p.png")
    resume.SEGMENT_MIN_FRAMES = 1  # a record at every clip: the worst case for the overhead
    base = dict(
        image=root / "p.png",
        audio=root / "a.wav",
        prompt="a person talking",
        size=args.size,
        ckpt_dir=ckpt,
        lora_path_dmd=lora,
        infer_frames=args.infer_frames,
        num_clip=args.clips,
        sample_steps=args.steps,
        engine="diffusion",
        skip_checks=True,
    )
    engine = select.build_engine("diffusion", GenerateConfig(**base).resolve())
    select.build_engine = lambda name, config: engine  # one load for every run below
    quiet = lambda s: None  # noqa: E731

    # timers around what only a resumable run does
    spent = {"segment_ends": 0.0}
    real_end, real_start = pipeline._end_segment, VideoWriter._start_segment

    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()  # wall time: the fsyncs wait for the disk, not the CPU
            try:
                return fn(*a, **k)
            finally:
                spent["segment_ends"] += time.perf_counter() - t0

        return wrapper

    pipeline._end_segment, VideoWriter._start_segment = timed(real_end), timed(real_start)
    first_write = {}
    real_write = VideoWriter.write

    def write(self, frames):
        first_write.setdefault("t", time.process_time())
        return real_write(self, frames)

    VideoWriter.write = write

    print(
        f"machine: {platform.machine()} CPU, {torch.get_num_threads()} torch threads, CPU seconds; tiny release, {args.size}, "
        f"{args.clips} clips of {args.infer_frames} frames, {args.steps} steps"
    )
    pipeline.run(GenerateConfig(**base, save_file=root / "warmup.mp4"), quiet, quiet, progress=False)
    spent["segment_ends"] = 0.0
    first_write.clear()
    out = root / "full.mp4"
    t0 = time.process_time()
    pipeline.run(GenerateConfig(**base, save_file=out), quiet, quiet, progress=False)
    total = time.process_time() - t0
    to_first = first_write["t"] - t0
    per_clip = (total - to_first) / (args.clips - 1)  # clips after the first (setup excluded)
    print(f"uninterrupted: {total:.2f} s, first frame after {to_first:.2f} s, {per_clip:.2f} s per later clip")
    print(
        f"segment ends (encoder restart, fsyncs, record): {spent['segment_ends'] / args.clips * 1000:.1f} ms per clip "
        f"= {100 * spent['segment_ends'] / (total - to_first + per_clip):.2f} % of the generation time "
        "(wall time of the segment ends over CPU time of the generation: an upper bound)"
    )

    sizes = []
    real_write_record = resume.write_record

    for k in [int(x) for x in args.at.split(",")]:
        target = root / f"v{k}.mp4"
        calls = [0]

        def stop_after(path, record, k=k, calls=calls):
            size = real_write_record(path, record)
            calls[0] += 1
            if calls[0] == k + 1:  # the record written at the start, then one per clip
                sizes.append((k, size))
                raise KeyboardInterrupt
            return size

        resume.write_record = stop_after
        try:
            pipeline.run(GenerateConfig(**base, save_file=target), quiet, quiet, progress=False)
        except KeyboardInterrupt:
            pass
        resume.write_record = real_write_record
        first_write.clear()
        t0 = time.process_time()
        pipeline.run(GenerateConfig(**base, save_file=target, resume=True), quiet, quiet, progress=False)
        before_new = first_write["t"] - t0
        replay = before_new - to_first  # beyond what any run spends before its first frame
        print(
            f"resume after {k} clips: first new frame after {before_new:.2f} s; beyond a fresh start {replay:.2f} s "
            f"= {replay / per_clip:.2f} clips' time ({replay / max(k, 1) / per_clip:.2f} per finished clip)"
        )
    for k, size in sizes:
        print(f"record after {k} clips: {size} bytes")
    window_replay_error(engine, args)


def window_replay_error(engine, args) -> None:
    """Replay only the last clip's blocks (the ring window) into fresh caches, from the true random
    state and reference, then denoise the next block: how far is it from the uninterrupted one?"""
    import torch

    from liveavatar.engines.diffusion.runtime.loop import LoopPlan, LoopState, StepCaches, denoise_blocks

    dit = engine.models.dit
    h = w = 8
    plan = LoopPlan(
        frames_per_clip=args.infer_frames,
        num_clips=3,
        latent_hw=(h, w),
        sample_steps=args.steps,
        sample_shift=3.0,
        seed=1,
        rolling_sink=False,
    )
    gen = torch.Generator().manual_seed(0)
    text = dit.encode_text(torch.randn(5, dit.config.text_dim, generator=gen))
    audio = torch.randn(1, 25, dit.config.audio_dim, plan.num_clips * plan.frames_per_clip, generator=gen)
    ref, motion = torch.randn(1, 16, 1, h, w, generator=gen), torch.randn(1, 16, 19, h, w, generator=gen)
    tasks = plan.schedule()
    window_start = next(t.index for t in tasks if t.clip == 1)  # clip 1's blocks fill the ring again
    target = next(t.index for t in tasks if t.clip == 2)
    state, snaps, whole = LoopState.start(plan.seed), {}, {}
    for block in denoise_blocks(dit, text, audio, ref, motion, plan, state=state):
        whole[block.task.index] = block.latents
        snaps[block.task.index + 1] = state.snapshot()
    caches = StepCaches.allocate(dit, plan, tuple(range(plan.sample_steps)))
    replayed = {}
    for block in denoise_blocks(dit, text, audio, ref, motion, plan, caches=caches, state=snaps[window_start]):
        replayed[block.task.index] = block.latents
        if block.task.index == target:
            break
    diff = (replayed[target] - whole[target]).abs().max().item()
    scale = whole[target].abs().max().item()
    print(
        f"window-only replay (clip 1 into fresh caches) -> first block of clip 2: max |diff| {diff:.3g} "
        f"(latents up to {scale:.3g}); bit-identical: {diff == 0}"
    )


if __name__ == "__main__":
    main()
