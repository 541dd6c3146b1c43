"""Bad portraits: no face, a face too small, several faces."""

import numpy as np
import pytest
from helpers import astronaut, make_inputs, make_plan, speech

from liveavatar.engines.preview import PreviewEngine
from liveavatar.engines.preview.face import MIN_FACE_PX, find_face
from liveavatar.errors import UserError


def test_no_face_suggests_a_frontal_portrait():
    from skimage import data

    with pytest.raises(UserError) as err:
        find_face(data.chelsea(), 512, 512, lambda m: None)
    assert err.value.input == "--image"
    assert "no face" in err.value.message
    assert "frontal" in err.value.fix


def test_small_face_names_the_minimum():
    # the astronaut's face is ~125 px tall at 512x512; at 128x128 output it is ~31 px
    with pytest.raises(UserError) as err:
        find_face(astronaut(), 128, 128, lambda m: None)
    assert f"at least {MIN_FACE_PX}" in err.value.message
    assert "pixels" in err.value.message


def test_two_faces_animates_the_largest_and_says_which():
    import cv2

    big = astronaut()
    small = cv2.resize(big, (384, 384), interpolation=cv2.INTER_AREA)
    image = np.full((512, 1024, 3), 230, np.uint8)
    image[:, 512:] = big
    image[64:448, 64:448] = small
    notes = []
    face = find_face(image, 512, 1024, notes.append)
    assert any("2 faces" in n and "largest" in n and "right" in n for n in notes), notes
    assert face.landmarks[:, 0].mean() > 512  # the big face on the right


def test_engine_raises_before_yielding_anything_without_a_face():
    from skimage import data

    audio = speech("hello there")
    gen = PreviewEngine().generate(make_inputs(data.coffee(), audio), make_plan(audio, 384, 512), lambda m: None)
    with pytest.raises(UserError):
        next(gen)
