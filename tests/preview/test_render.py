"""The engine's output: shapes, clip structure, stillness away from the head, determinism."""

import numpy as np

from helpers import astronaut, make_inputs, make_plan, silence, speech
from liveavatar.engines.preview import PreviewEngine
from liveavatar.engines.preview.face import find_face
from liveavatar.engines.preview.render import FrameParams, Renderer
from liveavatar.media.image import fit_to_size


def test_blocks_follow_the_clip_structure():
    audio = np.concatenate([speech("one two three four"), silence(0.3)])
    plan = make_plan(audio, 384, 256, frames_per_clip=16)
    blocks = list(PreviewEngine().generate(make_inputs(astronaut(), audio), plan, lambda m: None))
    assert [len(b) for b in blocks] == plan.clip_frame_counts()
    assert all(b.shape[1:] == (384, 256, 3) and b.dtype == np.uint8 for b in blocks)
    assert sum(len(b) for b in blocks) == plan.num_frames


def test_deterministic_for_a_seed():
    audio = speech("hello there")
    run = lambda seed: np.concatenate(list(PreviewEngine().generate(make_inputs(astronaut(), audio), make_plan(audio, seed=seed), lambda m: None)))  # noqa: E731
    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def _renderer():
    image = astronaut()
    face = find_face(image, 512, 512, lambda m: None)
    return Renderer(fit_to_size(image, 512, 512), face), face


def test_rest_frame_keeps_the_smile_and_the_rest():
    r, face = _renderer()
    assert face.mouth.kind == "teeth"  # the astronaut smiles with her teeth showing
    rest = r.render(FrameParams(0.0, 0.0, 0.0, (0, 0, 0, 0, 0)))
    outside = np.ones(rest.shape[:2], bool)
    outside[r.box.slices] = False
    assert np.array_equal(rest[outside], r.portrait[outside])
    assert np.abs(rest.astype(int) - r.portrait).max() <= 2  # teeth stay teeth at rest: the portrait itself


def test_open_mouth_is_darker_inside():
    r, face = _renderer()
    closed = r.render(FrameParams(0.0, 0.0, 0.0, (0, 0, 0, 0, 0)))
    opened = r.render(FrameParams(1.0, 0.0, 0.0, (0, 0, 0, 0, 0)))
    lm = face.landmarks
    x = int(lm[14][0])
    below = slice(int(lm[14][1]) + 2, int(lm[14][1]) + 10)
    assert opened[below, x].mean() < closed[below, x].mean() - 30


def test_blink_closes_the_eyes():
    r, face = _renderer()
    lm = face.landmarks
    open_ = r.render(FrameParams(0.0, 0.0, 0.0, (0, 0, 0, 0, 0)))
    shut = r.render(FrameParams(0.0, 0.0, 1.0, (0, 0, 0, 0, 0)))
    for idx in (468, 473):  # the iris centres disappear under the lids
        x, y = np.round(lm[idx]).astype(int)
        assert np.abs(open_[y - 1 : y + 2, x - 1 : x + 2].astype(int) - shut[y - 1 : y + 2, x - 1 : x + 2]).mean() > 20
