"""Non-finite numbers ('nan', 'inf', '-nan', '1e309') in every numeric flag of every command: one
`error:` line naming the flag, exit 2, nothing run."""

from __future__ import annotations

import argparse

import pytest

from liveavatar.argtypes import number
from liveavatar.cli import build_parser, main

NON_FINITE = ["nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309"]


def numeric_flags() -> list[tuple[str, str]]:
    """(command, --flag) for every flag whose value type is a number, found from the parser itself."""
    from liveavatar import argtypes

    numeric = {argtypes.number, argtypes.positive_int, argtypes.any_int, argtypes.gib_list, int, float}
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for command, p in sub.choices.items():
        for action in p._actions:
            if action.type in numeric and action.option_strings:
                found.append((command, action.option_strings[0]))
    return found


def test_every_numeric_flag_is_found():
    flags = set(numeric_flags())
    for expected in [
        ("generate", "--sample_shift"),
        ("generate", "--sample_guide_scale"),
        ("generate", "--gpu_memory"),
        ("generate", "--base_seed"),
        ("serve", "--keep_hours"),
        ("serve", "--max_upload_mb"),
        ("serve", "--max_audio_s"),
        ("serve", "--port"),
        ("doctor", "--sample_steps"),
    ]:
        assert expected in flags


@pytest.mark.parametrize("text", NON_FINITE)
def test_the_value_parser_refuses_non_finite(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a (finite )?number"):
        number(text)
    assert number("3") == 3.0 and number("-0.5") == -0.5 and number("1e3") == 1000.0


@pytest.mark.parametrize("command,flag", numeric_flags())
def test_every_numeric_flag_refuses_non_finite(capsys, tmp_path, command, flag):
    required = {"generate": ["--image", "x.png", "--audio", "x.wav"], "prepare": ["--out", str(tmp_path / "o")]}.get(
        command, []
    )
    for text in ("nan", "inf", "1e309", "24,nan"):
        code = main([command, *required, flag, text])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and flag in err[0], (flag, text, err)
    assert not (tmp_path / "o").exists()
