from pathlib import Path

import pytest

from liveavatar.config import PRESETS, GenerateConfig
from liveavatar.engines.diffusion.runtime.scheduler import timesteps
from liveavatar.errors import UserError


def cfg(**kw):
    return GenerateConfig(image=Path("i.png"), audio=Path("a.wav"), **kw)


def test_presets_have_the_guides_values():
    assert (
        PRESETS["quick"].size,
        PRESETS["quick"].num_clip,
        PRESETS["quick"].sample_steps,
        PRESETS["quick"].infer_frames,
    ) == ("384*256", 10, 3, 32)
    assert (
        PRESETS["standard"].size,
        PRESETS["standard"].num_clip,
        PRESETS["standard"].sample_steps,
        PRESETS["standard"].infer_frames,
    ) == ("688*368", 100, 4, 48)
    assert (
        PRESETS["high"].size,
        PRESETS["high"].num_clip,
        PRESETS["high"].sample_steps,
        PRESETS["high"].infer_frames,
    ) == ("704*384", 1000, 5, 48)
    assert not PRESETS["quick"].enable_online_decode and PRESETS["standard"].enable_online_decode


def test_explicit_flags_win_over_preset():
    resolved = cfg(preset="quick", size="704*384", sample_steps=4).resolve()
    assert resolved.size == "704*384" and resolved.sample_steps == 4
    assert resolved.infer_frames == 32 and resolved.num_clip == 10


def test_defaults_without_preset():
    resolved = cfg().resolve()
    assert (resolved.size, resolved.infer_frames, resolved.sample_steps, resolved.num_clip) == ("704*384", 48, 4, None)


@pytest.mark.parametrize(
    "kw,flag",
    [
        ({"infer_frames": 30}, "--infer_frames"),
        ({"infer_frames": -4}, "--infer_frames"),
        ({"num_clip": 0}, "--num_clip"),
        ({"sample_steps": 0}, "--sample_steps"),
        ({"sample_steps": 9}, "--sample_steps"),
        ({"size": "abc"}, "--size"),
        ({"sample_shift": 0}, "--sample_shift"),
    ],
)
def test_bad_values_name_their_flag(kw, flag):
    with pytest.raises(UserError) as err:
        cfg(**kw).resolve()
    assert err.value.input == flag


@pytest.mark.parametrize("frames", [4, 8, 32, 36, 48, 80])
def test_any_multiple_of_four_is_accepted(frames):
    assert cfg(infer_frames=frames).resolve().infer_frames == frames


def test_scheduler_timesteps_match_upstream():
    assert timesteps(4) == pytest.approx([1000.0, 857.6923, 602.1506, 8.9286], abs=1e-3)
    assert timesteps(3) == pytest.approx([1000.0, 751.12, 8.93], abs=1e-2)
