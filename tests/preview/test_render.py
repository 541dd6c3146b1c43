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
    # each clip in blocks of at most 12 frames (a live viewer's first frame comes sooner), never across clips
    expected = [n for count in plan.clip_frame_counts() for n in ([12, count - 12] if count > 12 else [count])]
    assert [len(b) for b in blocks] == expected and 4 in expected
    assert all(b.shape[1:] == (384, 256, 3) and b.dtype == np.uint8 for b in blocks)
    assert sum(len(b) for b in blocks) == plan.num_frames


def test_deterministic_for_a_seed():
    audio = speech("hello there")

    def run(seed):
        plan = make_plan(audio, seed=seed)
        return np.concatenate(list(PreviewEngine().generate(make_inputs(astronaut(), audio), plan, lambda m: None)))

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


def test_painted_interior_is_shaded_not_flat():
    import cv2

    r, _ = _renderer()
    w, gap = 80, 30.0
    # a lens-shaped opening like the engine's: closed at the corners, `gap` tall in the middle
    xs = np.linspace(0, 1, 11)
    upper = np.stack([10 + xs * w, 20 - 4 * np.sin(np.pi * xs)], 1)
    lower = np.stack([10 + xs * w, 20 + gap * np.sin(np.pi * xs)], 1)[::-1][1:-1]
    pts = np.concatenate([upper, lower]).astype(np.float32)
    mask = np.zeros((60, 100), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    ys = np.linspace(0.0, 1.0, 60, dtype=np.float32)[:, None, None]
    colour = r.painter._cavity(mask, ys, pts, gap)
    luma = colour @ np.array([0.299, 0.587, 0.114], np.float32)
    row = 26  # across the middle of the opening: darker deep inside than next to the lips
    inside = np.flatnonzero(mask[row] > 0)
    assert luma[row, inside[len(inside) // 2]] < luma[row, inside[2]] - 5
    # the tongue: lighter at the bottom middle than deep in the middle above it
    assert luma[44, 50] > luma[row, 50] + 5
