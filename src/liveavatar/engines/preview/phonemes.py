"""Timed phonemes from speech with pocketsphinx's bundled US-English model.

Two ways: phoneme recognition (``allphone``) on any speech, run chunk by chunk so memory stays
flat for long audio, or forced alignment of a transcript (exact words, better timing).
"""

from __future__ import annotations

import os
import re

import numpy as np

Phone = tuple[str, float, float]
"""(CMU phone name, start seconds, end seconds); "SIL" for silence."""

CHUNK_S = 30.0
ALIGN_MAX_S = 120.0
# Wide beams: the default ones lose the path on synthetic or unusual voices.
_BEAMS = dict(beam=1e-100, wbeam=1e-80, pbeam=1e-100)


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


def _chunk_bounds(audio: np.ndarray, sr: int, chunk_s: float = CHUNK_S) -> list[tuple[int, int]]:
    """Split points at the quietest 10 ms within the last 5 s of each ``chunk_s`` stretch."""
    bounds, start, n = [], 0, len(audio)
    step, hop = int(chunk_s * sr), sr // 100
    while n - start > step:
        lo, hi = start + step - 5 * sr, start + step
        seg = audio[lo:hi]
        energy = (seg[: len(seg) // hop * hop].reshape(-1, hop) ** 2).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * hop
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds


_pool = None  # set by isolate(): the decoder then runs in processes of its own


def isolate(processes: int = 1) -> None:
    """From now on, run the decoder in ``processes`` child processes (for a server).

    pocketsphinx holds the GIL for the whole of each ``process_raw`` call (seconds per 30 s chunk),
    which would stall every other thread of the process, such as a server's event loop. A child
    computes exactly what this process would (same code, same input); it is started once, here.
    """
    global _pool
    if _pool is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
        _pool.submit(_load).result()  # the children import pocketsphinx now, not in the first job


def _load() -> None:
    import pocketsphinx  # noqa: F401


def _isolated(fn, *args):
    """``fn(*args)`` in the child processes when isolate() was called, else here."""
    global _pool
    if _pool is None:
        return fn(*args)
    from concurrent.futures.process import BrokenProcessPool

    try:
        return _pool.submit(fn, *args).result()
    except BrokenProcessPool:  # a child was killed: start again once
        _pool = None
        isolate()
        return _pool.submit(fn, *args).result()


def recognise(audio: np.ndarray, sr: int) -> list[Phone]:
    """Phoneme recognition over the whole audio, 30 s at a time."""
    return _isolated(_recognise, audio, sr)


def _recognise(audio: np.ndarray, sr: int) -> list[Phone]:
    from pocketsphinx import Decoder, get_model_path

    decoder = Decoder(
        samprate=sr,
        allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"),
        lw=1.0,
        pip=1.0,
        beam=1e-20,
        pbeam=1e-20,
        loglevel="FATAL",  # a light phone LM: espeak voices lose phones at lw=2
    )
    phones: list[Phone] = []
    for lo, hi in _chunk_bounds(audio, sr):
        if hi - lo < sr // 20:
            continue
        decoder.start_utt()
        decoder.process_raw(_pcm16(audio[lo:hi]), full_utt=True)
        decoder.end_utt()
        t0 = lo / sr
        for seg in decoder.seg():
            phones.append((_clean(seg.word), t0 + seg.start_frame / 100, t0 + (seg.end_frame + 1) / 100))
    return phones


def align(audio: np.ndarray, sr: int, transcript: str) -> tuple[list[Phone] | None, str]:
    """Forced alignment of ``transcript``; ``(None, reason)`` when it cannot be done."""
    return _isolated(_align, audio, sr, transcript)


def _align(audio: np.ndarray, sr: int, transcript: str) -> tuple[list[Phone] | None, str]:
    from pocketsphinx import Decoder

    if len(audio) / sr > ALIGN_MAX_S:
        return None, f"the audio is longer than {ALIGN_MAX_S:.0f} s"
    decoder = Decoder(samprate=sr, bestpath=False, loglevel="FATAL", **_BEAMS)
    words = re.findall(r"[a-z']+", transcript.lower())
    known = [w for w in words if decoder.lookup_word(w)]
    if not words or len(known) < 0.8 * len(words):
        return None, "most transcript words are not in the English dictionary"
    raw = _pcm16(audio)
    try:
        decoder.set_align_text(" ".join(known))
        for _ in range(2):  # word alignment first, then phones within the words
            decoder.start_utt()
            decoder.process_raw(raw, full_utt=True)
            decoder.end_utt()
            if _ == 0:
                decoder.set_alignment()
        phones = [
            (_clean(p.name), p.start / 100, (p.start + p.duration) / 100) for w in decoder.get_alignment() for p in w
        ]
    except RuntimeError:
        return None, "the transcript could not be aligned with the speech"
    return phones, ""


def _clean(name: str) -> str:
    name = name.upper()
    return "SIL" if name.startswith("+") or name in ("<S>", "</S>", "<SIL>", "NSN") else name
