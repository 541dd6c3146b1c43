"""Face model from the portrait: landmarks in the fitted (output) coordinates."""

import numpy as np
from helpers import astronaut

from liveavatar.engines.preview.face import find_face, mesh_landmarks
from liveavatar.media.image import fit_to_size


def test_landmarks_map_to_the_fitted_portrait():
    image = astronaut()
    face = find_face(image, 512, 384, lambda m: None)  # cover-crop to a narrower frame
    assert face.landmarks.shape == (478, 2)
    direct = mesh_landmarks(fit_to_size(image, 512, 384))
    assert direct is not None
    err = np.abs(face.landmarks - direct).mean()
    assert err < 0.02 * face.face_height, err


def test_face_measures_are_plausible():
    face = find_face(astronaut(), 512, 512, lambda m: None)
    assert 90 < face.face_height < 200
    assert 0.25 < face.mouth_width / face.face_width < 0.6
    assert face.mouth_gap > 2  # the astronaut smiles with her teeth showing
