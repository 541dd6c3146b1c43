"""Utterance ends from voice activity on a live microphone (webrtcvad, torch-free, in the core install).

A microphone sends audio all the time; a live session wants only speech, and an ``end_of_speech``
when the person stops, so the avatar returns to listening. The gate opens after a short run of voiced
frames (with a little audio from before it, so the first syllable is kept) and closes after a
stretch of silence (the hangover, pushed too: the mouth closes on real silence, not on a cut).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

FRAME_MS = 30  # one of the three frame lengths webrtcvad accepts
VAD_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True)
class GateConfig:
    sample_rate: int = 16_000  # webrtcvad takes 8, 16, 32 or 48 kHz; other rates are gated by loudness
    aggressiveness: int = 2
    onset_ms: int = 60  # voiced audio needed to open (a click is shorter)
    hangover_ms: int = 450  # silence that ends an utterance (speech pauses between words are shorter)
    preroll_ms: int = 60  # audio before the onset that is kept (a consonant's start); latency grows with it
    floor_dbfs: float = -50.0  # quieter frames count as silence whatever the VAD says (mic hiss)


@dataclass(frozen=True)
class GateEvent:
    kind: str  # "start", "audio" or "end"
    pcm: np.ndarray | None = None  # int16 mono at the gate's rate (kind == "audio")


class UtteranceGate:
    """Feed int16 mono chunks of any size; get back start / audio / end events in order."""

    def __init__(self, config: GateConfig = GateConfig()) -> None:
        import webrtcvad

        self.config = config
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._n = config.sample_rate * FRAME_MS // 1000
        self._pending = np.zeros(0, np.int16)
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, (config.preroll_ms + config.onset_ms) // FRAME_MS))
        self._voiced_run = 0
        self._silent_run = 0
        self.speaking = False

    def feed(self, pcm: np.ndarray) -> list[GateEvent]:
        pcm = np.asarray(pcm, np.int16).reshape(-1)
        self._pending = np.concatenate([self._pending, pcm])
        events: list[GateEvent] = []
        while len(self._pending) >= self._n:
            frame, self._pending = self._pending[: self._n], self._pending[self._n :]
            events += self._frame(frame)
        return events

    def _is_voiced(self, frame: np.ndarray) -> bool:
        rms = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) / 32768.0
        if 20 * np.log10(rms + 1e-9) < self.config.floor_dbfs:
            return False
        if self.config.sample_rate not in VAD_RATES:  # webrtcvad cannot judge it: loudness alone
            return True
        return self._vad.is_speech(frame.astype("<i2").tobytes(), self.config.sample_rate)

    def _frame(self, frame: np.ndarray) -> list[GateEvent]:
        voiced = self._is_voiced(frame)
        if not self.speaking:
            self._preroll.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run * FRAME_MS < self.config.onset_ms:
                return []
            self.speaking, self._silent_run = True, 0
            kept = np.concatenate(list(self._preroll))
            self._preroll.clear()
            return [GateEvent("start"), GateEvent("audio", kept)]
        self._silent_run = 0 if voiced else self._silent_run + 1
        out = [GateEvent("audio", frame)]
        if self._silent_run * FRAME_MS >= self.config.hangover_ms:
            self.speaking, self._voiced_run = False, 0
            out.append(GateEvent("end"))
        return out
