"""The audio checks work in bounded memory: measuring long speech costs a constant, not a multiple of it."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from liveavatar.checks import speech


@pytest.fixture(scope="module")
def long_speech(speech_path) -> np.ndarray:
    x, sr = sf.read(str(speech_path), dtype="float32")
    x = np.concatenate([x, np.zeros(sr // 3, np.float32)])
    return np.tile(x, 300 * sr // len(x) + 1)[: 300 * sr]  # 5 minutes


def test_analysing_five_minutes_allocates_a_bounded_amount(long_speech):
    """5 min of 16 kHz float32 is 19 MB; the measures used to allocate ~1.7 GB on top of it (~90x)."""
    speech.analyse(long_speech[: 16_000 * 5])  # imports and first-use allocations out of the way
    tracemalloc.start()
    try:
        stats = speech.analyse(long_speech)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.speech_seconds > 200
    assert peak < 5 * long_speech.nbytes, f"peak {peak / 1e6:.0f} MB for {long_speech.nbytes / 1e6:.0f} MB of samples"


def test_block_boundaries_do_not_change_the_measures(long_speech, monkeypatch):
    """The band-pass and pitch run in blocks; one big block (the old way) gives the same numbers."""
    x = long_speech[: 16_000 * 130]
    blocked = speech.analyse(x)
    monkeypatch.setattr(speech, "FILTER_BLOCK_S", 1e9)
    monkeypatch.setattr(speech, "PITCH_BLOCK", 10**9)
    monkeypatch.setattr(speech, "CHUNK_FRAMES", 10**9)
    whole = speech.analyse(x)
    assert blocked.syllables_per_s == pytest.approx(whole.syllables_per_s, rel=0.01)
    assert blocked.f0_median_hz == whole.f0_median_hz and blocked.f0_spread_semitones == pytest.approx(
        whole.f0_spread_semitones
    )
    assert blocked.speech_level_db == pytest.approx(whole.speech_level_db, abs=1e-9)
