"""Each synthetic speech defect yields its code; clean speech yields none."""

from __future__ import annotations

import numpy as np
import pytest
from checks_corpus import at_level, clean_speech, speak, to_16k, write_wav

from liveavatar.checks import run_checks


def codes(path) -> set[str]:
    return {f.code for f in run_checks(audio=path)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("aud")
    x = clean_speech()
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    silence = np.zeros(16_000 * 3, np.float32)
    a8, sr = speak(voice="en-us+f3")
    cases = {
        "clean": write_wav(d / "clean.wav", x),
        "rate8k": write_wav(d / "rate8k.wav", at_level(to_16k(a8, sr)[::2], -16), sr=8000),
        "bit8": write_wav(d / "bit8.wav", x, subtype="PCM_U8"),
        "noisy": write_wav(d / "noisy.wav", x + noise * 10 ** (-25 / 20)),
        "quiet": write_wav(d / "quiet.wav", x * 10 ** (-14 / 20)),
        "clipped": write_wav(d / "clipped.wav", np.clip(x * 6, -1, 1)),
        "pauses": write_wav(d / "pauses.wav", np.concatenate([x[: 16_000 * 4], silence, x[16_000 * 4 :]])),
        "silent": write_wav(d / "silent.wav", np.zeros(16_000 * 5, np.float32)),
        "short": write_wav(d / "short.wav", x[16_000 : 16_000 + 8000]),
        "fast": write_wav(d / "fast.wav", clean_speech(rate=450)),
        "slow": write_wav(d / "slow.wav", clean_speech(rate=70)),
    }
    import soundfile as sf

    sf.write(str(d / "clean.flac"), x, 16_000)
    cases["flac"] = d / "clean.flac"
    return cases


def test_clean_speech_has_no_finding(clips):
    assert run_checks(audio=clips["clean"]) == []


@pytest.mark.parametrize(
    "case, code",
    [
        ("rate8k", "audio.sample_rate"),
        ("bit8", "audio.bit_depth"),
        ("noisy", "audio.noise"),
        ("quiet", "audio.quiet"),
        ("clipped", "audio.clipping"),
        ("pauses", "audio.silence"),
        ("silent", "audio.no_speech"),
        ("short", "audio.too_short"),
        ("fast", "audio.speech_rate"),
        ("slow", "audio.speech_rate"),
        ("flac", "audio.format"),
    ],
)
def test_defect_yields_its_code(clips, case, code):
    assert code in codes(clips[case])


def test_defects_do_not_bleed_into_other_codes(clips):
    assert codes(clips["noisy"]) == {"audio.noise"}
    assert codes(clips["quiet"]) == {"audio.quiet"}
    assert codes(clips["pauses"]) == {"audio.silence"}


def test_measurements_are_reported(clips):
    noise = next(f for f in run_checks(audio=clips["noisy"]) if f.code == "audio.noise")
    assert -27 < noise.measured < -23  # white noise added at -25 dBFS
    quiet = next(f for f in run_checks(audio=clips["quiet"]) if f.code == "audio.quiet")
    assert -31 < quiet.measured < -29  # -16 dBFS speech lowered by 14 dB


def test_silence_is_an_error(clips):
    assert [f.severity for f in run_checks(audio=clips["silent"]) if f.code == "audio.no_speech"] == ["error"]


def test_unreadable(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    assert codes(bad) == {"audio.unreadable"}
    assert codes(tmp_path / "missing.wav") == {"audio.unreadable"}
