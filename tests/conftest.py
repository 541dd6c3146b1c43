"""Fixtures shared by every test folder: inputs the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def portrait_path(tmp_path_factory) -> Path:
    """A real single-face portrait (scikit-image's astronaut, 512x512)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("portrait") / "portrait.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def speech_path(tmp_path_factory) -> Path:
    """About 4 s of English speech, 16 kHz 16-bit mono WAV, synthesised offline."""
    from support.speech_synth import write_speech

    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return write_speech(path, "Hello there. This is a short test of the talking avatar, spoken clearly.")


def write_tone(path: Path, seconds: float, sample_rate: int = 16_000, freq: float = 220.0) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


class FlatEngine:
    """Stand-in engine: flat grey frames in the plan's clip structure (no model, instant)."""

    name = "preview"

    def __init__(self) -> None:
        self.resume_states: dict[int, dict] = {}  # no state: nothing for a resumed run to compare

    def generate(self, inputs, plan, notify, start_clip=0, memory=None):
        for count in plan.clip_frame_counts()[start_clip:]:
            yield np.full((count, plan.height, plan.width, 3), 90, np.uint8)


@pytest.fixture
def flat_engine(monkeypatch):
    """Make every `generate` in this test use :class:`FlatEngine`."""
    from liveavatar.engines import select

    monkeypatch.setattr(select, "build_engine", lambda name, config, memory=None: FlatEngine())
