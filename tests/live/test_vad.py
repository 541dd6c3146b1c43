"""The microphone gate: utterances start on speech (with a little audio from before), end after a
stretch of silence, and clicks or hiss never start one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from liveavatar.live.vad import GateConfig, UtteranceGate

REPO = Path(__file__).resolve().parents[2]
SR = 16_000


def feed(gate: UtteranceGate, pcm: np.ndarray, chunk: int = 320) -> list[tuple[str, float, int]]:
    """(kind, seconds fed when it happened, samples) per event."""
    out = []
    for at in range(0, len(pcm), chunk):
        for e in gate.feed(pcm[at : at + chunk]):
            out.append((e.kind, (at + chunk) / SR, 0 if e.pcm is None else len(e.pcm)))
    return out


def test_speech_between_silences_is_one_utterance_with_its_start_kept():
    speech, sr = sf.read(str(REPO / "samples" / "speech.wav"), dtype="int16")
    assert sr == SR
    pcm = np.concatenate([np.zeros(SR, np.int16), speech[: int(2.0 * SR)], np.zeros(SR, np.int16)])
    events = feed(UtteranceGate(), pcm)
    kinds = [k for k, _, _ in events]
    assert kinds.count("start") == 1 and kinds.count("end") == 1 and kinds[0] == "start"
    start_at = next(t for k, t, _ in events if k == "start")
    end_at = next(t for k, t, _ in events if k == "end")
    assert 1.0 < start_at < 1.15  # the onset is heard within ~100 ms
    assert 3.0 + 0.4 < end_at < 3.0 + 0.6  # and the end after the hangover (450 ms)
    pushed = sum(n for k, _, n in events if k == "audio")
    config = GateConfig()
    # everything from the pre-roll before the onset to the end is pushed, nothing of the silences around
    assert abs(pushed / SR - (end_at - start_at + (config.preroll_ms + config.onset_ms) / 1000)) < 0.05


def test_clicks_and_hiss_start_nothing():
    rng = np.random.default_rng(0)
    hiss = (rng.normal(0, 30, 3 * SR)).astype(np.int16)  # about -60 dBFS
    clicks = hiss.copy()
    clicks[SR : SR + 80] = 20000  # a 5 ms click
    assert feed(UtteranceGate(), hiss) == [] and feed(UtteranceGate(), clicks) == []


def test_chunk_size_does_not_change_the_utterance():
    speech, _ = sf.read(str(REPO / "samples" / "speech.wav"), dtype="int16")
    pcm = np.concatenate([np.zeros(SR // 2, np.int16), speech[:SR], np.zeros(SR, np.int16)])
    a = [(k, n) for k, _, n in feed(UtteranceGate(), pcm, 160)]
    b = [(k, n) for k, _, n in feed(UtteranceGate(), pcm, 1234)]
    assert [k for k, _ in a if k != "audio"] == [k for k, _ in b if k != "audio"]
    assert sum(n for _, n in a) == sum(n for _, n in b)
