"""Speech checks: container and sample format, noise, loudness, clipping, pauses, speech, pace.

Thresholds: the guide's (WAV/MP3, >= 16 kHz, 16-bit, noise floor below -30 dBFS, speech RMS
>= -18 dBFS); the rest are documented in docs/checks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveavatar.checks import speech
from liveavatar.checks.findings import Finding
from liveavatar.errors import UserError

MIN_RATE = 16_000
MAX_NOISE_DB = -30.0
MIN_LEVEL_DB = -18.0
CLIPPED_FRACTION = 0.001  # share of samples sitting on the peak plateau
MAX_PAUSE_S = 1.5
MIN_SPEECH_SHARE = 0.5
MIN_SPEECH_S = 0.5
MIN_SECONDS = 2.0  # one 48-frame clip at 25 fps is 1.92 s
SLOW_SYLLABLES, FAST_SYLLABLES = 2.7, 6.8  # measured nuclei per second of speech
_EIGHT_BIT = {"PCM_U8", "PCM_S8", "ULAW", "ALAW", "G721_32", "IMA_ADPCM", "MS_ADPCM", "GSM610", "DPCM_8"}
_FORMATS = {"WAV", "WAVEX", "MP3"}


def _f(severity: str, code: str, message: str, measured: object, expected: object, fix: str) -> Finding:
    return Finding("audio", severity, code, message, measured, expected, fix)


def _container(path: Path) -> list[Finding]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return [
            _f(
                "warning",
                "audio.format",
                f"{path.suffix or 'this file'} is not WAV or MP3",
                path.suffix.lstrip(".").upper() or "unknown",
                "WAV or MP3",
                "convert it to a 16 kHz 16-bit WAV: liveavatar prepare --audio ...",
            )
        ]
    out: list[Finding] = []
    if info.format not in _FORMATS:
        out.append(
            _f(
                "warning",
                "audio.format",
                f"the audio is {info.format}, not WAV or MP3",
                info.format,
                "WAV or MP3",
                "convert it to a 16 kHz 16-bit WAV: liveavatar prepare --audio ...",
            )
        )
    if info.samplerate < MIN_RATE:
        out.append(
            _f(
                "warning",
                "audio.sample_rate",
                f"sample rate {info.samplerate} Hz is below {MIN_RATE} Hz: consonants lose their high band",
                info.samplerate,
                f">= {MIN_RATE}",
                "record or export at 16 kHz or more (resampling up cannot restore the lost band)",
            )
        )
    if info.subtype in _EIGHT_BIT:
        out.append(
            _f(
                "warning",
                "audio.bit_depth",
                f"{info.subtype} samples are 8-bit: quantisation noise is audible",
                8,
                ">= 16",
                "record or export as 16-bit PCM",
            )
        )
    return out


def measure_audio(x: np.ndarray) -> tuple[list[Finding], speech.SpeechStats]:
    """Findings for float32 mono 16 kHz samples."""
    s = speech.analyse(x)
    out: list[Finding] = []
    if s.seconds < MIN_SECONDS:
        out.append(
            _f(
                "warning",
                "audio.too_short",
                f"only {s.seconds:.2f} s of audio: shorter than one generated clip",
                round(s.seconds, 2),
                f">= {MIN_SECONDS} s",
                "give at least a few seconds of speech",
            )
        )
    if s.speech_seconds < MIN_SPEECH_S:
        out.append(
            _f(
                "error",
                "audio.no_speech",
                f"no speech was detected ({s.speech_seconds:.1f} s of voice activity)",
                round(s.speech_seconds, 2),
                f">= {MIN_SPEECH_S} s",
                "give a recording of someone speaking",
            )
        )
        return out, s
    if s.noise_floor_db > MAX_NOISE_DB:
        out.append(
            _f(
                "warning",
                "audio.noise",
                f"background noise floor is {s.noise_floor_db:.1f} dBFS: noise makes the lips drift",
                round(s.noise_floor_db, 1),
                f"<= {MAX_NOISE_DB:.0f} dBFS",
                "denoise it: liveavatar prepare --denoise (RNNoise)",
            )
        )
    if s.speech_level_db < MIN_LEVEL_DB:
        out.append(
            _f(
                "warning",
                "audio.quiet",
                f"speech is quiet: average RMS {s.speech_level_db:.1f} dBFS",
                round(s.speech_level_db, 1),
                f">= {MIN_LEVEL_DB:.0f} dBFS",
                "raise the level: liveavatar prepare (normalises to -16 dBFS)",
            )
        )
    peak = float(np.max(np.abs(x)))
    plateau = float(np.mean(np.abs(x) >= 0.97 * peak)) if peak >= 0.9 else 0.0
    if plateau > CLIPPED_FRACTION:
        out.append(
            _f(
                "warning",
                "audio.clipping",
                f"{plateau:.2%} of samples sit at the peak level {peak:.2f}: the recording clips",
                round(plateau, 4),
                f"<= {CLIPPED_FRACTION:.1%}",
                "record again with less gain (clipping cannot be undone)",
            )
        )
    share = s.speech_seconds / max(s.seconds, 1e-9)
    if s.longest_pause_s > MAX_PAUSE_S or share < MIN_SPEECH_SHARE:
        out.append(
            _f(
                "warning",
                "audio.silence",
                f"long silence: the longest pause is {s.longest_pause_s:.1f} s and speech fills {share:.0%} of the clip",
                {"longest_pause_s": round(s.longest_pause_s, 2), "speech_share": round(share, 2)},
                f"pauses <= {MAX_PAUSE_S} s, speech >= {MIN_SPEECH_SHARE:.0%}",
                "keep speech continuous: liveavatar prepare --shorten_pauses",
            )
        )
    rate = s.syllables_per_s
    if s.speech_seconds >= 1.5 and (rate < SLOW_SYLLABLES or rate > FAST_SYLLABLES):
        pace = "slow" if rate < SLOW_SYLLABLES else "fast"
        out.append(
            _f(
                "warning",
                "audio.speech_rate",
                f"speech is unusually {pace}: {rate:.1f} syllables per second",
                round(rate, 2),
                f"{SLOW_SYLLABLES}-{FAST_SYLLABLES} syllables/s",
                "speak at a natural, steady pace; lip-sync drifts on very fast or very slow speech",
            )
        )
    return out, s


def check_audio(path: Path) -> tuple[list[Finding], speech.SpeechStats | None]:
    """All audio findings for the file at ``path``."""
    from liveavatar.media.audio import read_audio

    path = Path(path)
    try:
        x = read_audio(path)
    except UserError as exc:
        code = "audio.non_finite" if "non-finite" in exc.message else "audio.unreadable"
        return [_f("error", code, exc.message, str(path), "a WAV or MP3 file with finite samples", exc.fix)], None
    return audio_findings(x, path)


def audio_findings(x: np.ndarray, path: Path) -> tuple[list[Finding], speech.SpeechStats]:
    """Findings for decoded 16 kHz mono samples, plus the container facts read from ``path``'s header."""
    findings, stats = measure_audio(x)
    return _container(path) + findings, stats
