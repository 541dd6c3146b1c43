"""`liveavatar prepare`: the fixes reach the guide's numbers and `check` agrees afterwards."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf
from checks_corpus import astronaut, clean_speech, save_image, write_wav

from liveavatar.checks import run_checks
from liveavatar.checks.speech import analyse, noise_floor_db
from liveavatar.cli import main
from liveavatar.media.audio import read_audio


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_denoise_reaches_the_floor_and_keeps_the_speech_level(tmp_path, capsys):
    # the default male eSpeak voice: its own floor is digital silence (the +f3 variant breathes at -48 dBFS)
    clean = clean_speech(voice="en-us", level_db=-15.0)
    noise = np.random.default_rng(1).standard_normal(len(clean)).astype(np.float32) * 10 ** (-25 / 20)
    src = write_wav(tmp_path / "noisy.wav", clean + noise)
    before = digest(src)
    assert "audio.noise" in {f.code for f in run_checks(audio=src)}
    assert main(["prepare", "--audio", str(src), "--out", str(tmp_path / "out"), "--denoise"]) == 0
    assert "noise floor" in capsys.readouterr().out
    out = tmp_path / "out" / "noisy.wav"
    y = read_audio(out)
    assert noise_floor_db(y) <= -60.0
    assert abs(analyse(y).speech_level_db - analyse(clean).speech_level_db) <= 2.0
    assert "audio.noise" not in {f.code for f in run_checks(audio=out)}
    assert digest(src) == before  # the original is untouched


def test_denoise_is_automatic_when_noisy(tmp_path):
    clean = clean_speech()
    noise = np.random.default_rng(2).standard_normal(len(clean)).astype(np.float32) * 10 ** (-25 / 20)
    src = write_wav(tmp_path / "noisy.wav", clean + noise)
    assert main(["prepare", "--audio", str(src), "--out", str(tmp_path)]) == 0
    assert noise_floor_db(read_audio(tmp_path / "noisy.prepared.wav")) < -50


def test_audio_becomes_16k_16bit_at_level(tmp_path):
    quiet8k = clean_speech(level_db=-32.0)[::2]
    src = write_wav(tmp_path / "q.wav", quiet8k, sr=8000, subtype="PCM_U8")
    assert main(["prepare", "--audio", str(src), "--out", str(tmp_path / "o")]) == 0
    info = sf.info(str(tmp_path / "o" / "q.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (16_000, 1, "PCM_16", "WAV")
    y, _ = sf.read(str(tmp_path / "o" / "q.wav"), dtype="float32")
    assert analyse(y).speech_level_db >= -18.0
    assert 20 * np.log10(np.abs(y).max()) <= -0.99


def test_loud_peaks_are_limited(tmp_path):
    x = clean_speech(level_db=-20.0)
    x[1000:1100] = 0.999  # a spike over the ceiling
    src = write_wav(tmp_path / "l.wav", x)
    assert main(["prepare", "--audio", str(src), "--out", str(tmp_path / "o")]) == 0
    y = read_audio(tmp_path / "o" / "l.wav")
    assert 20 * np.log10(np.abs(y).max()) <= -0.99 and analyse(y).speech_level_db >= -18.0


def test_shorten_pauses(tmp_path):
    x = clean_speech()
    src = write_wav(tmp_path / "p.wav", np.concatenate([x[:64_000], np.zeros(48_000, np.float32), x[64_000:]]))
    assert "audio.silence" in {f.code for f in run_checks(audio=src)}
    assert main(["prepare", "--audio", str(src), "--out", str(tmp_path / "o"), "--shorten_pauses"]) == 0
    out = tmp_path / "o" / "p.wav"
    assert analyse(read_audio(out)).longest_pause_s <= 1.0
    assert "audio.silence" not in {f.code for f in run_checks(audio=out)}


def test_upscale_small_portrait(tmp_path, capsys):
    from PIL import Image

    tiny = np.asarray(Image.fromarray(astronaut().astype(np.uint8)).resize((128, 128), Image.Resampling.BICUBIC))
    src = save_image(tmp_path / "tiny.png", tiny)
    assert main(["prepare", "--image", str(src), "--out", str(tmp_path / "o"), "--upscale"]) == 0
    printed = capsys.readouterr().out
    assert "enlarged" in printed
    if os.environ.get("LIVEAVATAR_EXPECT_REALESRGAN") == "1":  # set by .ci/run's enhance step
        assert "Real-ESRGAN x4plus" in printed
    out = tmp_path / "o" / "tiny.png"
    with Image.open(out) as img:
        assert min(img.size) >= 512
    codes = {f.code for f in run_checks(image=out)}
    assert "image.no_face" not in codes and "image.resolution" not in codes


def test_crop_to_size_aspect_keeps_the_face(tmp_path):
    from PIL import Image

    src = save_image(tmp_path / "a.png", astronaut())
    assert (
        main(["prepare", "--image", str(src), "--out", str(tmp_path / "o"), "--size", "384*704", "--no-upscale"]) == 0
    )
    with Image.open(tmp_path / "o" / "a.png") as img:
        w, h = img.size
    assert abs(w / h - 384 / 704) < 0.01
    assert "image.no_face" not in {f.code for f in run_checks(image=tmp_path / "o" / "a.png")}


def test_exif_orientation_applied(tmp_path):
    from PIL import Image

    a = astronaut().astype(np.uint8)[:, :400]  # 400 wide, 512 tall
    img = Image.fromarray(np.rot90(a, 1).copy())  # stored on its side
    exif = Image.Exif()
    exif[0x0112] = 8  # display rotated 90 degrees clockwise
    img.save(tmp_path / "r.jpg", exif=exif)
    assert main(["prepare", "--image", str(tmp_path / "r.jpg"), "--out", str(tmp_path / "o"), "--no-upscale"]) == 0
    with Image.open(tmp_path / "o" / "r.png") as out:
        assert out.size == (400, 512)


def test_lanczos_fallback_says_it_is_not_super_resolution(monkeypatch):
    from liveavatar.prepare import upscale

    monkeypatch.setattr(upscale, "realesrgan_available", lambda: False)
    out, method = upscale.upscale(np.zeros((100, 80, 3), np.uint8), 512)
    assert out.shape[:2] == (640, 512) and "NOT super-resolution" in method


@pytest.mark.parametrize("args", [["--out", "x"], ["--image", "a.png"]])
def test_usage_errors(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", *args]) == 2


@pytest.mark.parametrize("bad", ["image", "audio"])
def test_bad_input_leaves_nothing_behind(bad, tmp_path, capsys):
    image = save_image(tmp_path / "face.png", astronaut())
    audio = write_wav(tmp_path / "speech.wav", clean_speech())
    missing = tmp_path / "missing.png"
    out = tmp_path / "fixed"
    args = [
        "prepare",
        "--image",
        str(missing if bad == "image" else image),
        "--audio",
        str(image if bad == "audio" else audio),
        "--out",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --{bad}")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prepare-")]
