"""The phoneme decoder in a child process (what `serve` does, so that pocketsphinx's long GIL-holding
calls never stall the API) recognises exactly what it recognises in this process."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pocketsphinx")


def test_isolated_recognition_is_the_same(speech_path, monkeypatch):
    from liveavatar.engines.preview import phonemes
    from liveavatar.media.audio import read_audio

    audio = read_audio(speech_path)
    here = phonemes.recognise(audio, 16_000)
    assert len(here) > 10
    phonemes.isolate()
    try:
        assert phonemes._pool.submit(os.getpid).result() != os.getpid()  # really another process
        assert phonemes.recognise(audio, 16_000) == here
        assert phonemes.align(audio, 16_000, "hello") == phonemes._align(audio, 16_000, "hello")
    finally:  # the other tests run the decoder here again
        phonemes._pool.shutdown()
        phonemes._pool = None
