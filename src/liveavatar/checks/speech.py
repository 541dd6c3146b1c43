"""Signal measures of speech shared by the audio checks, the consistency checks and prepare.

All functions take float32 mono samples in [-1, 1] at 16 kHz (what media.audio.read_audio gives).
Voice activity comes from webrtcvad (torch-free, in the core install) gated by energy, so that a
steady noise bed is not taken for speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 16_000
VAD_FRAME_S = 0.03
FLOOR_FRAME_S = 0.02
EPS_DB = -120.0
CHUNK_FRAMES = 4096  # frames per block in the bounded-memory measures
PITCH_BLOCK = 2048  # pitch windows per FFT block (about 10 MB of spectra)
MAX_PITCH_WINDOWS = 30_000  # 5 min at a 10 ms hop; longer speech is sampled with a wider hop
FILTER_BLOCK_S, FILTER_MARGIN_S = 60.0, 1.0  # band-pass in blocks; the filter settles in a few ms


def frame_mean_square(x: np.ndarray, n: int) -> np.ndarray:
    """Mean square of consecutive ``n``-sample frames, float64, computed in bounded blocks.

    A float64 copy of a long recording would cost 8 bytes per sample at once; blocks of
    CHUNK_FRAMES frames keep the working memory constant whatever the length.
    """
    k = len(x) // n
    out = np.empty(k, np.float64)
    for start in range(0, k, CHUNK_FRAMES):
        stop = min(k, start + CHUNK_FRAMES)
        block = x[start * n : stop * n].astype(np.float64).reshape(stop - start, n)
        out[start:stop] = np.mean(block**2, axis=1)
    return out


def frame_rms_db(x: np.ndarray, frame_s: float, sr: int = SR) -> np.ndarray:
    """RMS of consecutive non-overlapping frames, in dBFS (a full-scale square wave is 0 dBFS)."""
    n = int(round(frame_s * sr))
    if len(x) // n == 0:
        return np.full(1, _db(float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0))
    return 20 * np.log10(np.maximum(np.sqrt(frame_mean_square(x, n)), 1e-6))


def _db(value: float) -> float:
    return float(20 * np.log10(value)) if value > 1e-6 else EPS_DB


def noise_floor_db(x: np.ndarray, sr: int = SR) -> float:
    """The guide's noise floor: 10th percentile of 20 ms frame RMS, dBFS."""
    return float(np.percentile(frame_rms_db(x, FLOOR_FRAME_S, sr), 10))


def speech_mask(x: np.ndarray, sr: int = SR, aggressiveness: int = 2) -> np.ndarray:
    """Per 30 ms frame: True where webrtcvad hears speech and the frame stands above the floor."""
    import webrtcvad

    n = int(VAD_FRAME_S * sr)
    k = len(x) // n
    if k == 0:
        return np.zeros(0, dtype=bool)
    pcm = (np.clip(x[: k * n], -1, 1) * 32767).astype("<i2")
    vad = webrtcvad.Vad(aggressiveness)
    voiced = np.array([vad.is_speech(pcm[i * n : (i + 1) * n].tobytes(), sr) for i in range(k)], dtype=bool)
    rms = frame_rms_db(x[: k * n], VAD_FRAME_S, sr)
    gate = max(noise_floor_db(x, sr) + 6.0, -55.0)
    mask = voiced & (rms > gate)
    return _close_gaps(mask, max_gap=int(0.2 / VAD_FRAME_S))


def _close_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False no longer than ``max_gap`` that lie between two True frames."""
    out = mask.copy()
    idx = np.flatnonzero(mask)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= max_gap + 1:
            out[a:b] = True
    return out


def runs(mask: np.ndarray, value: bool) -> list[tuple[int, int]]:
    """(start, stop) frame index pairs of the runs equal to ``value``."""
    padded = np.concatenate([[False], mask == value, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def speech_level_db(x: np.ndarray, mask: np.ndarray, sr: int = SR) -> float:
    """RMS over the speech frames, dBFS (the guide's 'average RMS')."""
    n = int(VAD_FRAME_S * sr)
    if not mask.any():
        return EPS_DB
    power = frame_mean_square(x[: len(mask) * n], n)[mask]
    return _db(float(np.sqrt(np.mean(power))))


def pitch_track(x: np.ndarray, mask: np.ndarray, sr: int = SR, fmin: float = 65.0, fmax: float = 400.0) -> np.ndarray:
    """F0 in Hz of the clearly voiced 40 ms windows (10 ms hop) inside speech; empty if none.

    Normalised autocorrelation (computed with FFTs); a window counts as voiced when its best
    peak in [fmin, fmax] reaches 0.6.
    """
    win, hop = int(0.04 * sr), int(0.01 * sr)
    if len(x) < win or not mask.any():
        return np.zeros(0)
    starts = np.arange(0, len(x) - win, hop)
    vad_frame = (starts + win // 2) // int(VAD_FRAME_S * sr)
    keep = vad_frame < len(mask)
    starts = starts[keep][mask[vad_frame[keep]]]
    if len(starts) > MAX_PITCH_WINDOWS:  # long speech: an even sample of the windows is enough for percentiles
        starts = starts[np.linspace(0, len(starts) - 1, MAX_PITCH_WINDOWS).astype(np.int64)]
    if len(starts) == 0:
        return np.zeros(0)
    return np.concatenate(
        [_block_f0(x, starts[i : i + PITCH_BLOCK], win, sr, fmin, fmax) for i in range(0, len(starts), PITCH_BLOCK)]
    )


def _block_f0(x: np.ndarray, starts: np.ndarray, win: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    frames = x[starts[:, None] + np.arange(win)].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    lag_lo, lag_hi = int(sr / fmax), int(sr / fmin)
    # the circular autocorrelation equals the linear one for lags below nfft - win, so nfft
    # only has to cover win + lag_hi, not 2 * win
    nfft = 1 << int(np.ceil(np.log2(win + lag_hi)))
    spec = np.fft.rfft(frames, nfft)
    ac = np.fft.irfft(np.abs(spec) ** 2, nfft)[:, :lag_hi]
    energy = ac[:, :1] + 1e-12
    # unbiased normalisation, so long lags are not penalised
    norm = ac[:, lag_lo:lag_hi] / energy * (win / (win - np.arange(lag_lo, lag_hi)))
    # the shortest lag whose peak comes within 85% of the best one: avoids picking a multiple of
    # the period (an octave too low) on breathy or creaky voices
    peak_max = norm.max(axis=1, keepdims=True)
    local = np.zeros_like(norm, dtype=bool)
    local[:, 1:-1] = (norm[:, 1:-1] >= norm[:, :-2]) & (norm[:, 1:-1] >= norm[:, 2:])
    best = np.argmax(local & (norm >= 0.85 * peak_max), axis=1)
    strength = norm[np.arange(len(norm)), best]
    lags = (best + lag_lo).astype(np.float64)
    voiced = strength >= 0.6
    return sr / lags[voiced]


def syllable_rate(x: np.ndarray, mask: np.ndarray, sr: int = SR) -> float:
    """Syllable nuclei per second of speech: peaks of the 300-2500 Hz energy envelope.

    A nucleus is an envelope peak at least 80 ms from the next, 3 dB above its surroundings and
    within 20 dB of the loudest speech; 0.0 when there is no speech.
    """
    from scipy.signal import butter, find_peaks

    speech_s = float(mask.sum()) * VAD_FRAME_S
    if speech_s < 0.3:
        return 0.0
    sos = butter(4, [300, 2500], btype="band", fs=sr, output="sos")
    hop = int(0.01 * sr)
    env = np.sqrt(np.concatenate([frame_mean_square(band, hop) for band in _band_blocks(sos, x, sr, hop)]))
    k = len(env)
    env = np.convolve(env, np.ones(5) / 5, mode="same")
    env_db = 20 * np.log10(np.maximum(env, 1e-6))
    in_speech = mask[np.minimum(np.arange(k) // 3, len(mask) - 1)]
    top = np.percentile(env_db[in_speech], 95) if in_speech.any() else env_db.max()
    peaks, _ = find_peaks(env_db, distance=8, prominence=3.0, height=top - 20)
    peaks = peaks[in_speech[peaks]]
    return len(peaks) / speech_s


def _band_blocks(sos: np.ndarray, x: np.ndarray, sr: int, hop: int):
    """Zero-phase band-passed ``x`` in blocks (each filtered with a margin on both sides), hop-aligned."""
    from scipy.signal import sosfiltfilt

    block = int(FILTER_BLOCK_S * sr) // hop * hop
    margin = int(FILTER_MARGIN_S * sr)
    usable = len(x) // hop * hop
    for start in range(0, max(usable, 1), block):
        stop = min(usable, start + block)
        lo, hi = max(0, start - margin), min(len(x), stop + margin)
        if hi - lo <= 27:  # sosfiltfilt needs more samples than its padding
            yield np.zeros(stop - start)
            continue
        yield sosfiltfilt(sos, x[lo:hi].astype(np.float64))[start - lo : stop - lo]


@dataclass(frozen=True)
class SpeechStats:
    """Everything measured about one speech clip (16 kHz)."""

    seconds: float
    noise_floor_db: float
    speech_level_db: float
    speech_seconds: float
    longest_pause_s: float
    syllables_per_s: float
    f0_median_hz: float  # 0.0 when no voiced frame
    f0_spread_semitones: float  # 10th-90th percentile range of F0, semitones
    level_spread_db: float  # 10th-90th percentile range of speech-frame RMS, dB
    mask: np.ndarray


def analyse(x: np.ndarray, sr: int = SR) -> SpeechStats:
    mask = speech_mask(x, sr)
    speech_s = float(mask.sum()) * VAD_FRAME_S
    pauses = [b - a for a, b in runs(mask, False)] if mask.any() else [len(mask)]
    f0 = pitch_track(x, mask, sr)
    if len(f0) >= 10:
        semis = 12 * np.log2(f0 / np.median(f0))
        f0_med, f0_spread = float(np.median(f0)), float(np.percentile(semis, 90) - np.percentile(semis, 10))
    else:
        f0_med, f0_spread = 0.0, 0.0
    rms = frame_rms_db(x[: len(mask) * int(VAD_FRAME_S * sr)], VAD_FRAME_S, sr)[mask] if mask.any() else np.zeros(1)
    return SpeechStats(
        seconds=len(x) / sr,
        noise_floor_db=noise_floor_db(x, sr),
        speech_level_db=speech_level_db(x, mask, sr),
        speech_seconds=speech_s,
        longest_pause_s=max(pauses, default=0) * VAD_FRAME_S,
        syllables_per_s=syllable_rate(x, mask, sr),
        f0_median_hz=f0_med,
        f0_spread_semitones=f0_spread,
        level_spread_db=float(np.percentile(rms, 90) - np.percentile(rms, 10)),
        mask=mask,
    )
