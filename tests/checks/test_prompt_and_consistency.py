"""Prompt rules, voice/prompt consistency, the clean trio, the CLI and the generate gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from checks_corpus import GOOD_PROMPT, astronaut, clean_speech, save_image, write_wav

from liveavatar.checks import gate, run_checks
from liveavatar.checks.prompt import check_prompt
from liveavatar.cli import main
from liveavatar.errors import UserError


def pcodes(text: str) -> set[str]:
    return {f.code for f in check_prompt(text)}


def test_good_prompt_is_clean():
    assert check_prompt(GOOD_PROMPT) == []


@pytest.mark.parametrize(
    "text, code",
    [
        ("a woman talking", "prompt.length"),
        (GOOD_PROMPT + " " + GOOD_PROMPT, "prompt.length"),
        (GOOD_PROMPT.replace("Soft frontal", "Beautiful soft frontal"), "prompt.vague"),
        (GOOD_PROMPT.replace("confident expression", "happy but sad expression"), "prompt.contradiction"),
        (
            "Eine junge Frau mit langen schwarzen Haaren und braunen Augen spricht freundlich in einem modernen Büro "
            * 8,
            "prompt.language",
        ),
        ("一位留着黑色长发的年轻女子在现代办公室里微笑着说话", "prompt.language"),
    ],
)
def test_prompt_defect_yields_its_code(text, code):
    assert code in pcodes(text)


def test_missing_elements_are_named():
    found = [
        f for f in check_prompt("A woman with long black hair and a blue suit.") if f.code == "prompt.missing_elements"
    ]
    assert found and set(found[0].measured) == {"action", "environment", "style"}


def test_negated_opposite_is_not_a_contradiction():
    assert "prompt.contradiction" not in pcodes(
        GOOD_PROMPT.replace("confident expression", "happy expression, not sad at all")
    )


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    d = tmp_path_factory.mktemp("trio")
    return {
        "image": save_image(d / "portrait.png", astronaut()),
        "audio": write_wav(d / "speech.wav", clean_speech()),
        "male": write_wav(d / "male.wav", clean_speech(voice="en-us")),
        "flat": write_wav(d / "flat.wav", clean_speech(pitch_range=0)),
    }


def test_clean_trio_has_no_finding_at_all(trio):
    assert run_checks(trio["image"], trio["audio"], GOOD_PROMPT) == []


def test_male_voice_against_woman_prompt(trio):
    found = [f for f in run_checks(audio=trio["male"], prompt=GOOD_PROMPT) if f.code == "consistency.voice_gender"]
    assert found and found[0].measured < 150


def test_flat_speech_against_laughing_prompt(trio):
    prompt = GOOD_PROMPT.replace("with a gentle, confident expression", "laughing heartily")
    assert "consistency.emotion" in {f.code for f in run_checks(audio=trio["flat"], prompt=prompt)}
    assert "consistency.emotion" not in {f.code for f in run_checks(audio=trio["audio"], prompt=prompt)}


def test_cli_json_and_exit_codes(trio, tmp_path, capsys):
    assert (
        main(["check", "--image", str(trio["image"]), "--audio", str(trio["audio"]), "--prompt", GOOD_PROMPT, "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"ok": True, "findings": []}
    silent = write_wav(tmp_path / "silent.wav", np.zeros(32_000, np.float32))
    assert main(["check", "--audio", str(silent), "--prompt", "hi", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and {"audio.no_speech", "prompt.length"} <= {f["code"] for f in out["findings"]}
    f = out["findings"][0]
    assert set(f) >= {"input", "severity", "code", "message", "measured", "expected"}
    assert main(["check", "--image", str(tmp_path / "nope.png")]) == 1
    assert main(["check"]) == 2


def test_cli_human_report(trio, capsys):
    assert main(["check", "--prompt", "a nice woman"]) == 0
    text = capsys.readouterr().out
    assert "prompt.vague" in text and "measured:" in text and "fix:" in text


def decoded(image, audio, prompt):
    from liveavatar.config import GenerateConfig
    from liveavatar.pipeline import read_inputs

    return read_inputs(GenerateConfig(image=image, audio=audio, prompt=prompt))


def test_gate_notifies_warnings_and_raises_first_error(trio, tmp_path):
    notes: list[str] = []
    gate(decoded(trio["image"], trio["audio"], "a woman talking"), notes.append)
    assert notes and all(n.startswith("warning: --prompt:") for n in notes)
    silent = write_wav(tmp_path / "silent.wav", np.zeros(32_000, np.float32))
    with pytest.raises(UserError) as exc:
        gate(decoded(trio["image"], silent, GOOD_PROMPT), notes.append)
    assert exc.value.input == "--audio" and "speech" in exc.value.message


def test_gate_decodes_nothing_again(trio, monkeypatch):
    """generate decodes each input once: the gate measures the arrays it is handed."""
    from liveavatar.media import audio as media_audio
    from liveavatar.media import image as media_image

    inputs = decoded(trio["image"], trio["audio"], GOOD_PROMPT)
    expected = run_checks(trio["image"], trio["audio"], GOOD_PROMPT)

    def refuse(*args, **kwargs):
        raise AssertionError("an input file was decoded a second time")

    monkeypatch.setattr(media_image, "read_image", refuse)
    monkeypatch.setattr(media_audio, "read_audio", refuse)
    monkeypatch.setattr(media_audio, "iter_audio", refuse)
    from liveavatar.checks import check_decoded

    assert check_decoded(inputs) == expected
