"""generate's flags come from GenerateConfig's fields: one default per setting, notes for inert flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from liveavatar.cli import build_parser, main
from liveavatar.config import GenerateConfig, inert_flag_notes
from liveavatar.options import add_generate_options, config_from_args, help_text

README = Path(__file__).resolve().parents[1] / "README.md"


def parse(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(["generate", "--image", "i.png", "--audio", "a.wav", *args])


def test_every_field_is_a_flag_and_unset_flags_give_the_fields_defaults():
    args = parse()
    for f in dataclasses.fields(GenerateConfig):
        assert hasattr(args, f.name), f"--{f.name} is not a flag"
    assert config_from_args(args) == GenerateConfig(image=Path("i.png"), audio=Path("a.wav"))


def test_flags_parse_to_the_config_the_user_asked_for():
    config = config_from_args(
        parse(
            "--fp8",
            "--offload_model",
            "false",
            "--sample_steps",
            "3",
            "--size",
            "384*256",
            "--engine",
            "preview",
            "--overwrite",
            "--num_gpus_dit",
            "2",
        )
    )
    assert (config.fp8, config.offload_model, config.sample_steps, config.size) == (True, False, 3, "384*256")
    assert (config.engine, config.overwrite, config.num_gpus_dit) == ("preview", True, 2)
    assert config.given() == ["size", "sample_steps", "offload_model", "fp8", "num_gpus_dit", "engine", "overwrite"]


def test_help_shows_the_value_resolve_fills_in():
    resolved = GenerateConfig(image=Path("i"), audio=Path("a")).resolve()
    fields = {f.name: f for f in dataclasses.fields(GenerateConfig)}
    for name in ("size", "infer_frames", "sample_steps", "base_seed"):
        assert f"(default: {getattr(resolved, name)})" in help_text(fields[name])
    assert help_text(fields["enable_online_decode"]).endswith("(default: on)") and resolved.enable_online_decode is True


def test_another_front_end_can_register_the_same_options():
    parser = argparse.ArgumentParser()
    add_generate_options(parser, skip=("image", "audio", "save_file"))
    args = parser.parse_args(["--sample_steps", "2", "--fp8"])
    assert not hasattr(args, "image") and not hasattr(args, "save_file")
    config = config_from_args(args, image=Path("x.png"), audio=Path("y.wav"))
    assert config.sample_steps == 2 and config.fp8 and config.image == Path("x.png")


def test_readme_parameter_table_lists_exactly_the_flags():
    table = README.read_text().split("### Parameters", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `(--\w+)", table, re.M))
    flags = {
        a.option_strings[0]
        for a in build_parser()._subparsers._group_actions[0].choices["generate"]._actions
        if a.option_strings and a.option_strings[0] not in ("-h", "--debug")
    }
    assert documented == flags


def cfg(**kw) -> GenerateConfig:
    return GenerateConfig(image=Path("i.png"), audio=Path("a.wav"), **kw)


def test_flags_an_engine_ignores_get_one_note_line():
    assert inert_flag_notes(cfg(), "preview", "cpu") == []
    assert inert_flag_notes(cfg(preset="high"), "preview", "cpu") == []  # a preset is not a flag given
    notes = inert_flag_notes(cfg(fp8=True, offload_model=True, sample_steps=3, base_seed=1), "preview", "cpu")
    assert notes == ["note: --sample_steps, --offload_model, --fp8 do nothing with the preview engine"]
    assert inert_flag_notes(cfg(fp8=True), "diffusion", "cpu") == [
        "note: --fp8 does nothing on a CPU (needs a CUDA GPU)"
    ]
    assert inert_flag_notes(cfg(fp8=True, sample_steps=3), "diffusion", "cuda") == []
    assert inert_flag_notes(cfg(transcript="hello"), "diffusion", "cuda") == [
        "note: --transcript does nothing with the diffusion engine"
    ]


def test_dry_run_prints_only_what_the_preview_engine_uses(capsys, portrait_path, speech_path):
    code = main(
        [
            "generate",
            "--image",
            str(portrait_path),
            "--audio",
            str(speech_path),
            "--dry_run",
            "--engine",
            "preview",
            "--fp8",
            "--sample_steps",
            "2",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    plan = json.loads(captured.out.strip().splitlines()[-1])
    assert not {"sample_steps", "sample_shift", "timesteps", "enable_online_decode"} & set(plan)
    assert captured.err.strip().splitlines() == ["note: --sample_steps, --fp8 do nothing with the preview engine"]


@pytest.mark.parametrize("flag", ["--sample_steps", "--fp8"])
def test_dry_run_diffusion_keeps_the_sampling_settings(capsys, portrait_path, speech_path, flag):
    args = [flag, "2"] if flag == "--sample_steps" else [flag]
    assert (
        main(
            [
                "generate",
                "--image",
                str(portrait_path),
                "--audio",
                str(speech_path),
                "--dry_run",
                "--engine",
                "diffusion",
                *args,
            ]
        )
        == 0
    )
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"sample_steps", "sample_shift", "timesteps", "enable_online_decode"} <= set(plan)


def test_serve_takes_generates_engine_flags():
    from liveavatar.config import ENGINE_OPTION
    from liveavatar.option_groups import in_group

    sub = build_parser()._subparsers._group_actions[0].choices
    for name in in_group(ENGINE_OPTION):
        serve_help = next(a.help for a in sub["serve"]._actions if f"--{name}" in a.option_strings)
        generate_help = next(a.help for a in sub["generate"]._actions if f"--{name}" in a.option_strings)
        assert serve_help == generate_help
    args = sub["serve"].parse_args(["--fp8", "--offload_model", "false"])
    assert args.fp8 is True and args.offload_model is False and args.num_gpus_dit == 1


def test_server_form_fields_parse_as_the_flags_do():
    from liveavatar.options import value_parser

    assert value_parser("enable_online_decode")("no") is False and value_parser("num_clip")("3") == 3
    assert value_parser("preset")("quick") == "quick"
    for name, bad in (("preset", "ultra"), ("num_clip", "0"), ("base_seed", "x")):
        with pytest.raises(argparse.ArgumentTypeError):
            value_parser(name)(bad)
