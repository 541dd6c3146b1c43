"""Audio -> mouth track: silence closes the mouth, phonemes time the lips, odd audio falls back."""

import numpy as np
from helpers import SR, silence, speech

from liveavatar.engines.preview.speech import analyse_speech, coarticulate, viseme_raster


def test_silence_keeps_the_mouth_closed():
    track = analyse_speech(silence(3.0), SR, 75, None, lambda m: None)
    assert np.all(track.open == 0)


def test_english_speech_uses_phonemes_and_opens_with_the_voice():
    """The mouth moves where the voice is and rests in the pause between the phrases, frames known from
    how the audio was put together (not from the track's own loudness)."""
    parts = [silence(0.6), speech("we went to the moon"), silence(1.0), speech("and came back home"), silence(0.8)]
    audio = np.concatenate(parts)
    n = int(len(audio) / SR * 25)
    ends = np.cumsum([len(p) for p in parts]) / SR * 25  # part boundaries in frames
    notes = []
    track = analyse_speech(audio, SR, n, None, notes.append)
    assert track.source == "phonemes", notes
    starts, stops = np.floor(ends[[0, 2]]).astype(int), np.ceil(ends[[1, 3]]).astype(int)
    for start, stop in zip(starts, stops):
        assert (
            track.open[start - 2 : start].max() == 0 and track.open[start + 1 : start + 3].min() > 0.2
        )  # opens with the voice
        assert track.open[start + 1 : stop - 1].mean() > 0.3
        assert track.open[stop + 1 : stop + 3].max() == 0  # and closes when it stops
    assert track.open[stops[0] + 1 : starts[1] - 1].max() == 0 and track.open.max() > 0.5


def test_transcript_is_aligned():
    text = "hello there how are you today"
    track = analyse_speech(speech(text), SR, 40, text, lambda m: None)
    assert track.source == "alignment"


def test_unknown_transcript_falls_back_with_a_warning():
    notes = []
    track = analyse_speech(speech("hello there"), SR, 25, "zzxq blorf qwvv", notes.append)
    assert track.source != "alignment"
    assert any("transcript not used" in n for n in notes)


def test_sung_tones_fall_back_to_loudness():
    """Tones with a known swell (sin^2, 2 per second): the mouth follows that envelope."""
    t = np.arange(SR * 5) / SR
    f = 220 * 2 ** (np.floor(t * 2) % 5 / 12)
    envelope = np.sin(np.pi * t * 2) ** 2
    tones = (0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR) * envelope).astype(np.float32)
    notes = []
    track = analyse_speech(tones, SR, 125, None, notes.append)
    assert track.source == "loudness" and notes
    frame_envelope = envelope[(np.arange(125) / 25 * SR).astype(int)]
    assert np.corrcoef(track.open, frame_envelope)[0, 1] > 0.8


def test_closures_survive_coarticulation():
    phones = [("AA", 0.0, 0.2), ("M", 0.2, 0.28), ("AA", 0.28, 0.5)]
    shape = coarticulate(viseme_raster(phones, 50))
    assert shape[24, 3] > 0.7  # lips pressed in the middle of the M
    assert shape[5, 0] > 0.9 and shape[24, 0] < shape[5, 0]
