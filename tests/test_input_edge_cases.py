"""Unusual and broken inputs: one `error:` line and exit 2 (or a correct reading), never a hang or a traceback."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from liveavatar.cli import main

REPO = Path(__file__).resolve().parents[1]


def one_error_line(capsys, code: int, *needles: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def gen(image, audio, *more) -> list[str]:
    return ["generate", "--image", str(image), "--audio", str(audio), "--engine", "preview", "--size", "128*128", *more]


# --- non-finite samples -------------------------------------------------------------------------


@pytest.fixture(params=["nan", "inf", "-inf"])
def broken_wav(request, tmp_path, speech_path) -> Path:
    x, sr = sf.read(str(speech_path), dtype="float32")
    x[1000:1100] = float(request.param)
    path = tmp_path / f"{request.param}.wav"
    sf.write(str(path), x, sr, subtype="FLOAT")
    return path


def test_check_reports_non_finite_audio(capsys, broken_wav):
    assert main(["check", "--audio", str(broken_wav), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [f["code"] for f in findings] == ["audio.non_finite"]
    assert "non-finite" in findings[0]["message"]


def test_generate_refuses_non_finite_audio_even_without_checks(
    capsys, tmp_path, portrait_path, broken_wav, flat_engine
):
    code = main(gen(portrait_path, broken_wav, "--skip_checks", "--save_file", str(tmp_path / "v.mp4")))
    one_error_line(capsys, code, "--audio", "non-finite", "prepare")
    assert not (tmp_path / "v.mp4").exists()


def test_prepare_repairs_non_finite_audio_and_says_how_many(capsys, tmp_path, broken_wav):
    assert main(["prepare", "--audio", str(broken_wav), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "non-finite samples" in out and "replaced with silence" in out
    assert "-120.0" not in out
    y, _ = sf.read(str(tmp_path / "o" / broken_wav.name), dtype="float32")
    assert np.isfinite(y).all()
    assert np.mean(np.abs(y) > 0.9) < 0.01, "not a file of full-scale samples"
    assert main(["check", "--audio", str(tmp_path / "o" / broken_wav.name)]) == 0


# --- named pipes (must not hang: run in a subprocess with a timeout) ------------------------------


@pytest.mark.parametrize(
    "command,flag",
    [
        ("prepare", "--audio"),
        ("prepare", "--image"),
        ("check", "--audio"),
        ("check", "--image"),
        ("generate", "--audio"),
        ("generate", "--image"),
    ],
)
def test_named_pipe_is_refused_not_waited_on(tmp_path, portrait_path, speech_path, command, flag):
    fifo = tmp_path / ("pipe.wav" if flag == "--audio" else "pipe.png")
    os.mkfifo(fifo)
    given = {"--image": str(portrait_path), "--audio": str(speech_path), flag: str(fifo)}
    argv = {
        "prepare": [flag, str(fifo), "--out", str(tmp_path / "o")],
        "check": [flag, str(fifo)],
        "generate": ["--image", given["--image"], "--audio", given["--audio"], "--save_file", str(tmp_path / "v.mp4")],
    }[command]
    proc = subprocess.run(
        [sys.executable, "-m", "liveavatar", command, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        cwd=tmp_path,
    )
    assert "named pipe" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "empty" not in proc.stderr
    assert proc.returncode == (1 if command == "check" else 2)


# --- images -------------------------------------------------------------------------------------


def test_16bit_grayscale_png_is_read_as_gray_not_white(tmp_path, portrait_path):
    from liveavatar.media.image import read_image

    gray = np.asarray(Image.open(portrait_path).convert("L")).astype(np.uint16) * 257
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = read_image(path)
    assert rgb.shape == (*gray.shape, 3)
    assert np.abs(rgb[..., 0].astype(int) - gray // 257).max() <= 1


def test_prepare_writes_a_16bit_portrait_as_it_looks(tmp_path, portrait_path, capsys):
    gray = np.asarray(Image.open(portrait_path).convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray).save(tmp_path / "g16.png")
    assert main(["prepare", "--image", str(tmp_path / "g16.png"), "--out", str(tmp_path / "o"), "--no-upscale"]) == 0
    out = np.asarray(Image.open(tmp_path / "o" / "g16.png").convert("L"))
    assert 40 < out.mean() < 200, "not a white image"


def png_header_only(path: Path, width: int, height: int, color_type: int = 2) -> Path:
    """A valid PNG header claiming ``width x height`` (the pixel data is never reached)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize(
    "width,height,color", [(20_000, 20_000, 2), (20_000, 20_000, 0), (1, 200_000_000, 2), (12_000, 11_000, 2)]
)
def test_huge_image_is_refused_with_the_limit(capsys, tmp_path, speech_path, width, height, color):
    image = png_header_only(tmp_path / "huge.png", width, height, color)
    code = main(gen(image, speech_path, "--save_file", str(tmp_path / "v.mp4")))
    one_error_line(capsys, code, "--image", "MP")
    assert main(["check", "--image", str(image)]) == 1
    assert "MP" in capsys.readouterr().out


def test_exif_rotated_image_reports_its_displayed_size(tmp_path, capsys):
    from liveavatar.checks import run_checks

    raw = np.zeros((300, 400, 3), np.uint8)  # stored 400 wide, 300 high; orientation 6 shows it 300x400
    img = Image.fromarray(raw)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "r.jpg", exif=exif)
    found = [f for f in run_checks(image=tmp_path / "r.jpg") if f.code == "image.resolution"]
    assert found and found[0].measured == [300, 400] and "300x400" in found[0].message


# --- prompt files -------------------------------------------------------------------------------

TEXT = "A woman with short brown hair talks calmly in a bright studio, café lighting."


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be-bom", "utf-32"])
def test_prompt_file_in_any_unicode_encoding_with_bom_is_read(tmp_path, encoding):
    from liveavatar.media.text import prompt_text

    path = tmp_path / "p.txt"
    if encoding == "utf-16-be-bom":
        path.write_bytes(b"\xfe\xff" + TEXT.encode("utf-16-be"))
    else:
        path.write_bytes(TEXT.encode(encoding))
    assert prompt_text(f"@{path}") == TEXT


@pytest.mark.parametrize("command", ["generate", "check"])
@pytest.mark.parametrize("content", ["png bytes", "utf-16 without bom", "latin-1"])
def test_unreadable_prompt_file_is_one_line(capsys, tmp_path, portrait_path, speech_path, command, content):
    path = tmp_path / "p.txt"
    data = {
        "png bytes": portrait_path.read_bytes()[:4000],
        "utf-16 without bom": TEXT.encode("utf-16-le"),
        "latin-1": TEXT.encode("latin-1"),
    }[content]
    path.write_bytes(data)
    argv = (
        gen(portrait_path, speech_path, "--save_file", str(tmp_path / "v.mp4")) if command == "generate" else ["check"]
    )
    code = main([*argv, "--prompt", f"@{path}"])
    one_error_line(capsys, code, "--prompt", str(path))


# --- seeds --------------------------------------------------------------------------------------


def test_seed_minus_one_is_random_and_printed(capsys, tmp_path, portrait_path, speech_path, flat_engine):
    seeds = []
    for i in range(2):
        assert (
            main(gen(portrait_path, speech_path, "--base_seed", "-1", "--save_file", str(tmp_path / f"{i}.mp4"))) == 0
        )
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("seed: "))
        seeds.append(int(line.split()[1]))
        assert f"--base_seed {seeds[-1]}" in line
    assert seeds[0] != seeds[1] and all(0 <= s < 2**31 for s in seeds)


@pytest.mark.parametrize("engine", ["preview", "diffusion"])
def test_seed_minus_one_dry_run_shows_the_seed_on_every_engine(capsys, portrait_path, speech_path, engine):
    assert (
        main(
            [
                "generate",
                "--image",
                str(portrait_path),
                "--audio",
                str(speech_path),
                "--engine",
                engine,
                "--base_seed",
                "-1",
                "--dry_run",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["seed"] >= 0


@pytest.mark.parametrize("seed", [str(2**70), str(2**63), "-2"])
def test_seed_out_of_range_is_one_line(capsys, tmp_path, portrait_path, speech_path, seed):
    code = main(gen(portrait_path, speech_path, "--base_seed", seed, "--save_file", str(tmp_path / "v.mp4")))
    one_error_line(capsys, code, "--base_seed")


def test_largest_seed_works(tmp_path, portrait_path, speech_path, capsys):
    """The preview engine's numpy generator takes the largest accepted seed."""
    argv = gen(portrait_path, speech_path, "--base_seed", str(2**63 - 1), "--save_file", str(tmp_path / "v.mp4"))
    argv[argv.index("128*128")] = "256*256"
    assert main([*argv, "--num_clip", "1", "--infer_frames", "8", "--skip_checks"]) == 0


# --- a preset that renders less than the audio --------------------------------------------------


def test_quick_preset_says_how_much_audio_it_renders(capsys, tmp_path, portrait_path):
    audio = tmp_path / "long.wav"
    t = np.arange(30 * 16_000) / 16_000
    sf.write(str(audio), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16_000, subtype="PCM_16")
    assert (
        main(["generate", "--image", str(portrait_path), "--audio", str(audio), "--preset", "quick", "--dry_run"]) == 0
    )
    notes = [x for x in capsys.readouterr().err.splitlines() if x.startswith("note:")]
    assert len(notes) == 1
    assert "--preset quick renders 12.8 s of the 30.0 s" in notes[0] and "--num_clip 24" in notes[0]
    assert (
        main(
            [
                "generate",
                "--image",
                str(portrait_path),
                "--audio",
                str(audio),
                "--preset",
                "quick",
                "--num_clip",
                "24",
                "--dry_run",
            ]
        )
        == 0
    )
    err = capsys.readouterr()
    assert "note:" not in err.err and json.loads(err.out.strip().splitlines()[-1])["duration_s"] == 30.0


# --- output folders that cannot be written ------------------------------------------------------


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys")
def test_prepare_into_a_read_only_folder_is_one_line(capsys, speech_path):
    code = main(["prepare", "--audio", str(speech_path), "--out", "/sys/liveavatar-out"])
    one_error_line(capsys, code, "--out")


def test_prepare_into_an_unwritable_existing_folder_is_one_line(capsys, tmp_path, speech_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == out else real(p, mode))
    code = main(["prepare", "--audio", str(speech_path), "--out", str(out)])
    one_error_line(capsys, code, "--out", "not writable")
    assert list(out.iterdir()) == []


# --- surround audio -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [2, 6, 8])
def test_multichannel_speech_is_not_reported_as_clipping(tmp_path, speech_path, channels):
    from liveavatar.checks import run_checks
    from liveavatar.media.audio import read_audio

    x, sr = sf.read(str(speech_path), dtype="float32")
    x = x / np.abs(x).max() * 0.7
    path = tmp_path / f"c{channels}.wav"
    sf.write(str(path), np.repeat(x[:, None], channels, axis=1), sr, subtype="PCM_16")
    assert np.abs(read_audio(path)).max() == pytest.approx(0.7, abs=0.01)
    assert "audio.clipping" not in {f.code for f in run_checks(audio=path)}


# --- first-use friction -------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [("Hello", "1 word:"), ("Hello there", "2 words:")])
def test_word_count_grammar(text, expected):
    from liveavatar.checks.prompt import check_prompt

    found = [f for f in check_prompt(text) if f.code == "prompt.length"]
    assert found and expected in found[0].message


def test_make_demo_says_how_to_run_the_command_in_a_new_shell():
    proc = subprocess.run(["make", "-n", "demo"], capture_output=True, text=True, cwd=REPO)
    recipe = proc.stdout
    assert "generate" in recipe and "activate" in recipe.split("generate", 1)[1]
