"""Each synthetic portrait defect yields its code; the clean portrait yields none."""

from __future__ import annotations

import numpy as np
import pytest
from checks_corpus import SHADOW_EDGES, astronaut, save_image, shadowed

from liveavatar.checks import run_checks


def codes(path) -> set[str]:
    return {f.code for f in run_checks(image=path)}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    import skimage.data
    from PIL import Image

    d = tmp_path_factory.mktemp("img")
    a = astronaut()
    tiny = np.asarray(Image.fromarray(a.astype(np.uint8)).resize((128, 128), Image.Resampling.BICUBIC))
    cases = {
        "clean": save_image(d / "clean.png", a),
        "dark": save_image(d / "dark.png", a * 0.2),
        "over": save_image(d / "over.png", a * 1.6 + 40),
        "tiny": save_image(d / "tiny.png", tiny),
        "two": save_image(d / "two.png", np.concatenate([a, a], axis=1)),
        "noface": save_image(d / "noface.png", np.asarray(Image.fromarray(skimage.data.chelsea()).resize((768, 512)))),
    }
    from liveavatar.checks.face import detect_faces

    face = detect_faces(a.astype(np.uint8))[0]
    for edge in SHADOW_EDGES:
        cases[f"shadow_{edge}"] = save_image(
            d / f"shadow_{edge}.png", shadowed(a, (face.x, face.y, face.w, face.h), edge)
        )
    Image.fromarray(a.astype(np.uint8)).save(d / "clean.bmp")
    cases["bmp"] = d / "clean.bmp"
    return cases


def test_clean_portrait_has_no_finding(images):
    assert run_checks(image=images["clean"]) == []


@pytest.mark.parametrize(
    "case, code",
    [
        ("dark", "image.dark"),
        ("over", "image.overexposed"),
        *[(f"shadow_{edge}", "image.uneven_lighting") for edge in SHADOW_EDGES],
        ("tiny", "image.resolution"),
        ("tiny", "image.face_small"),
        ("two", "image.multiple_faces"),
        ("noface", "image.no_face"),
        ("bmp", "image.format"),
    ],
)
def test_defect_yields_its_code(images, case, code):
    assert code in codes(images[case])


def test_no_face_is_an_error_and_others_are_warnings(images):
    by_code = {f.code: f.severity for f in run_checks(image=images["noface"])}
    assert by_code["image.no_face"] == "error"
    assert {f.severity for f in run_checks(image=images["two"])} == {"warning"}


def test_turned_head_is_a_profile(tmp_path):
    # skimage's cameraman has his head turned three-quarters away from the camera
    import skimage.data
    from PIL import Image

    cam = np.stack([skimage.data.camera()] * 3, axis=-1)
    path = save_image(tmp_path / "cam.png", np.asarray(Image.fromarray(cam).resize((1024, 1024))))
    assert "image.profile" in codes(path)


def test_mouth_wide_open_is_exaggerated(monkeypatch, images):
    from liveavatar.checks import image as image_checks
    from liveavatar.checks.face import FaceShape

    monkeypatch.setattr(
        image_checks, "face_shape", lambda rgb, face: FaceShape(yaw=0.0, mouth_open=0.8, eyes_open=0.3, face_width=90.0)
    )
    found = [f for f in run_checks(image=images["clean"]) if f.code == "image.expression"]
    assert found and found[0].measured == 0.8


def test_unreadable_and_missing(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    assert codes(bad) == {"image.unreadable"}
    found = run_checks(image=tmp_path / "missing.png")
    assert [(f.code, f.severity) for f in found] == [("image.unreadable", "error")]
