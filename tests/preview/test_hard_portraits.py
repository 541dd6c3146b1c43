"""Open mouths, toothy smiles, hidden and stylised mouths: the mouth model, the safe mode, and the
checks agreeing with the engine. Small frames and short audio; measured on the output frames."""

import corpus
import numpy as np
import pytest
from helpers import SR, make_inputs, make_plan, silence, speech

from liveavatar.checks.image import measure_image
from liveavatar.engines.preview import PreviewEngine
from liveavatar.engines.preview.render import FrameParams
from liveavatar.media.image import fit_to_size
from support import preview_quality as Q

ARTIFACT_MAX = 1.3  # see docs/preview.md: the corpus spans 0.80-1.08; the old saw-tooth closure read higher
FOLDED_MAX = 0.05  # see docs/preview.md: the corpus reads <= 0.033 (the old warp 0.30-0.76)
REST = FrameParams(0.0, 0.0, 0.0, (0, 0, 0, 0, 0))


def _prepare(image, size=256, seconds=1.0):
    audio = silence(seconds)
    notes = []
    renderer, _ = PreviewEngine().prepare(make_inputs(image, audio), make_plan(audio, size, size), notes.append)
    return renderer, notes


def test_hidden_mouth_checks_and_engine_agree():
    image = corpus.beard(cover_mouth=True)
    renderer, notes = _prepare(image)
    assert renderer.mode == "jaw"
    lines = [n for n in notes if n.startswith("note: the preview moves only the jaw")]
    assert len(lines) == 1 and "\n" not in lines[0]
    findings, _ = measure_image(image)
    mouth = [f for f in findings if f.code == "image.mouth"]
    assert mouth and "lips are clearly visible" in mouth[0].fix
    # the safe mode paints nothing: the rest frame is the portrait
    assert np.abs(renderer.render(REST).astype(int) - renderer.portrait).max() <= 2


def test_visible_mouth_is_animated_and_not_flagged():
    image = corpus.smile()
    renderer, notes = _prepare(image)
    assert renderer.mode == "lips" and not any("only the jaw" in n for n in notes)
    assert not [f for f in measure_image(image)[0] if f.code == "image.mouth"]


def test_open_mouth_closes_on_lip_not_on_a_dark_gap():
    image = corpus.open_mouth()
    renderer, _ = _prepare(image, size=384)
    portrait = renderer.portrait
    rest = renderer.render(REST)
    lm, ref = Q.landmarks_per_frame([rest, portrait])
    # closed at rest: the mesh reads the lips as touching (the old closure read a third of the gap)
    assert lm is not None and Q.mouth_opening(lm) < 0.01 < 0.1 < Q.mouth_opening(ref)
    # where the portrait's dark interior was, the rest frame shows lip-coloured pixels
    inner = renderer.painter.base.astype(int)
    cx, cy = inner[:, 0].mean().astype(int), inner[:, 1].mean().astype(int)
    patch = rest[cy - 2 : cy + 3, cx - 6 : cx + 7].astype(float)
    assert patch.mean() > portrait[cy - 2 : cy + 3, cx - 6 : cx + 7].mean() + 20
    assert Q.mouth_artifact_ratio([rest], portrait, ref) <= ARTIFACT_MAX


def _folds(renderer) -> list[float]:
    from liveavatar.engines.preview import lips

    keep = renderer.painter.rest_gap > 0
    return [
        lips.folded_share(renderer.g, lips.jaw_offsets(renderer.g, a, renderer.style, keep)) for a in (0.0, 0.5, 1.0)
    ]


@pytest.mark.parametrize("name", ["smile", "open_mouth", "beard"])
def test_the_mouth_warp_does_not_fold(name):
    """Closing a wide mouth and opening a smile move neighbouring vertices very differently; the warp
    must not turn triangles inside out (that is what drew jagged dark slashes at the corners)."""
    renderer, _ = _prepare(corpus.GENERATED[name](), size=384)
    assert max(_folds(renderer)) <= FOLDED_MAX


@pytest.mark.skipif(corpus.upstream("man.png") is None, reason="needs ../shared/fixtures/upstream-examples")
def test_shouting_portrait_lip_syncs_and_check_names_the_fix():
    image = corpus.upstream("man.png")
    audio = np.concatenate([silence(0.4), speech("we went to the moon and came back home"), silence(0.8)])
    plan = make_plan(audio, 352, 640)
    frames = np.concatenate(list(PreviewEngine().generate(make_inputs(image, audio), plan, lambda m: None)))
    lms = Q.landmarks_per_frame(frames)
    assert all(lm is not None for lm in lms)
    opening = np.array([Q.mouth_opening(lm) for lm in lms])
    r0, lag, _ = Q.lagged_correlation(opening, Q.loudness_envelope(audio, SR, len(frames)))
    assert r0 >= 0.75 and abs(lag) <= 1, (r0, lag)  # reads 0.91 here, 0.87 in the benchmark (0.6 asked of any portrait)
    pauses = Q.pause_frames(audio, SR, len(frames), min_s=0.5)
    renderer, _ = PreviewEngine().prepare(make_inputs(image, audio), plan, lambda m: None)
    assert max(_folds(renderer)) <= FOLDED_MAX
    rest = Q.rest_opening(renderer)
    assert rest is not None and rest < 0.01  # the shout closes: the mesh reads the lips as touching
    # every frame of the tail pause is back at rest (the benchmark: 98 % over its longer pauses)
    assert Q.rest_share(opening, pauses, rest=rest) >= 0.9
    portrait = fit_to_size(image, 352, 640)
    ref = Q.landmarks_per_frame([portrait])[0]
    assert Q.mouth_artifact_ratio(frames, portrait, ref) <= ARTIFACT_MAX
    expression = [f for f in measure_image(image)[0] if f.code == "image.expression"]
    assert expression and expression[0].fix == "use a photo with the mouth closed or slightly open"


@pytest.mark.skipif(
    corpus.upstream("dwarven_blacksmith.jpg") is None, reason="needs ../shared/fixtures/upstream-examples"
)
def test_bearded_stylised_face_falls_back_to_the_jaw():
    image = corpus.upstream("dwarven_blacksmith.jpg")
    renderer, notes = _prepare(image, size=720)
    assert renderer.mode == "jaw" and sum("only the jaw" in n for n in notes) == 1
    assert [f for f in measure_image(image)[0] if f.code == "image.mouth"]
