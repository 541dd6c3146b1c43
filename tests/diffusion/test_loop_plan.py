"""LoopPlan's two constructors: a run's plan, and shapes only (estimates, benchmarks)."""

from __future__ import annotations

from liveavatar.config import Plan
from liveavatar.engines.diffusion.runtime.loop import LoopPlan


def test_a_runs_loop_plan_takes_the_latent_grid_the_last_clip_and_the_sink_policy():
    plan = Plan(
        engine="diffusion",
        height=384,
        width=704,
        fps=25,
        frames_per_clip=48,
        num_clips=3,
        num_frames=120,
        sample_steps=4,
        sample_shift=5.0,
        seed=11,
        prompt="",
        enable_online_decode=False,
    )
    loop = LoopPlan.of(plan)
    assert loop.latent_hw == (48, 88)  # the 14B run's grid: 8x8 pixels per latent cell
    assert loop.last_clip_frames == 24 and loop.num_clips == 3  # 120 = 48 + 48 + 24
    assert (loop.sample_steps, loop.sample_shift, loop.seed, loop.rolling_sink) == (4, 5.0, 11, False)
    assert loop.tokens_per_frame == 24 * 44


def test_a_shape_only_loop_plan_has_the_same_token_counts():
    plan = Plan(
        engine="diffusion",
        height=256,
        width=384,
        fps=25,
        frames_per_clip=32,
        num_clips=1,
        num_frames=32,
        sample_steps=2,
        sample_shift=3.0,
        seed=0,
        prompt="",
        enable_online_decode=True,
    )
    shapes = LoopPlan.for_size(256, 384, 32, 2)
    assert (shapes.ring_tokens, shapes.sink_tokens) == (LoopPlan.of(plan).ring_tokens, LoopPlan.of(plan).sink_tokens)
    assert shapes.num_clips == 1 and shapes.latents_per_clip == 8
