"""Blinks, head motion and prompt cues: natural timing, smooth, deterministic per seed."""

import numpy as np

from liveavatar.engines.preview.motion import MotionScales, blink_track, motion_track, prompt_scales


def test_blinks_every_two_to_six_seconds():
    track = blink_track(25 * 120, np.random.default_rng(3))
    starts = np.flatnonzero((track > 0) & (np.roll(track, 1) == 0))
    gaps = np.diff(starts) / 25
    assert len(starts) >= 120 / 6
    assert gaps.min() >= 2.0 - 1e-6 and gaps.max() <= 6.0 + 1e-6
    assert (track > 0.9).sum() == len(starts)  # one fully closed frame each (~150 ms blink)


def test_same_seed_same_motion_other_seed_other_motion():
    loud = np.abs(np.sin(np.arange(500) / 7.0)).astype(np.float32)
    a = motion_track(500, loud, 7, MotionScales())
    b = motion_track(500, loud, 7, MotionScales())
    c = motion_track(500, loud, 8, MotionScales())
    assert np.array_equal(a.yaw, b.yaw) and np.array_equal(a.blink, b.blink)
    assert not np.array_equal(a.yaw, c.yaw)


def test_head_motion_is_smooth_and_small():
    loud = np.zeros(1000, np.float32)
    m = motion_track(1000, loud, 1, MotionScales())
    for track in (m.yaw, m.pitch, m.roll, m.tx, m.ty):
        assert np.abs(track).max() < 0.06
        assert np.abs(np.diff(track, 2)).max() < 0.002  # no jitter


def test_prompt_words_scale_motion():
    calm, lively = (
        prompt_scales("She speaks in a calm, relaxed way"),
        prompt_scales("an enthusiastic presenter, nodding"),
    )
    assert calm.head < 1 < lively.head and lively.nod > 1.5
    assert calm.words == ("calm", "relaxed")
    assert prompt_scales("a portrait").words == ()
    loud = np.abs(np.sin(np.arange(750) / 5.0)).astype(np.float32)
    assert np.std(motion_track(750, loud, 1, lively).yaw) > 2 * np.std(motion_track(750, loud, 1, calm).yaw)


def test_motion_constants_come_from_the_style():
    from dataclasses import replace

    from liveavatar.engines.preview.style import DEFAULT_STYLE

    style = replace(DEFAULT_STYLE, prompt_cues=(("sleepy", (0.5, 0.5, 0.6)),), head_yaw=0.0, blink_every=(1.0, 1.0))
    scales = prompt_scales("a sleepy calm voice", style)
    assert scales.words == ("sleepy",) and scales.head == 0.5 and scales.mouth == 0.6  # "calm" is not a cue here
    loud = np.abs(np.sin(np.arange(500) / 7.0)).astype(np.float32)
    m = motion_track(500, loud, 3, MotionScales(), style)
    assert not m.yaw.any() and m.roll.any()
    starts = np.flatnonzero((m.blink > 0) & (np.roll(m.blink, 1) == 0))
    assert np.all(np.diff(starts) == 25)  # one blink a second, as the style says
