"""Each GenerateConfig field declares its groups once; every option list in the code is derived from them.

The lists checked: serve's engine flags and its EngineOptions record, the options a server request
may set, the resume identity, the planner's "finish" command, and doctor's planned-run flags.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from liveavatar import option_groups as groups_module
from liveavatar import options as options_module
from liveavatar.argtypes import positive_int
from liveavatar.cli import build_parser
from liveavatar.config import (
    DOCTOR,
    ENGINE_OPTION,
    GROUPS,
    IDENTITY,
    PER_REQUEST,
    GenerateConfig,
    Plan,
    option,
)
from liveavatar.option_groups import doctor_defaults, engine_options_type, in_group


def _subparser(name: str):
    return build_parser()._subparsers._group_actions[0].choices[name]


def _config_flags(parser) -> set[str]:
    """The GenerateConfig options a parser takes (its own flags, e.g. serve's --port, left out)."""
    names = {f.name for f in groups_module.option_fields()}
    return {a.dest for a in parser._actions if a.dest in names}


def _plan(engine: str = "preview") -> Plan:
    return Plan(
        engine=engine,
        height=256,
        width=384,
        fps=25,
        frames_per_clip=48,
        num_clips=2,
        num_frames=80,
        sample_steps=4,
        sample_shift=3.0,
        seed=7,
        prompt="a person talking",
        enable_online_decode=True,
    )


def _tagged(group: str) -> set[str]:
    return {f.name for f in groups_module.option_fields() if group in f.metadata["groups"]}


def test_every_list_is_what_the_tags_say(portrait_path, speech_path):
    from liveavatar.doctor import Request
    from liveavatar.planning.memory import finish_command
    from liveavatar.resume import run_settings
    from liveavatar.serve.uploads import OPTIONS

    assert set(in_group(ENGINE_OPTION)) == _tagged(ENGINE_OPTION) == _config_flags(_subparser("serve"))
    assert {f.name for f in dataclasses.fields(groups_module.EngineOptions)} == _tagged(ENGINE_OPTION)
    assert set(OPTIONS) == _tagged(PER_REQUEST)
    assert _config_flags(_subparser("doctor")) == _tagged(DOCTOR) == {f.name for f in dataclasses.fields(Request)}
    config = GenerateConfig(image=portrait_path, audio=speech_path, prompt="hi", transcript="hello").resolve()
    recorded = set(run_settings(config, _plan())) - {"writer"}
    assert recorded == {f"--{name}" for name in _tagged(IDENTITY) - {"ckpt_dir", "lora_path_dmd"}}
    repeated = {arg[2:] for arg in finish_command(config, 704, 384).split() if arg.startswith("--")}
    given = {name for name in _tagged(IDENTITY) if getattr(config, name) not in (None, "")}
    assert repeated == given | {"overwrite"}


def test_the_server_resident_engine_takes_every_engine_option():
    """gpu_memory and enable_vae_parallel were missing from serve's hand-written lists."""
    args = _subparser("serve").parse_args(["--gpu_memory", "24", "--enable_vae_parallel", "false", "--fp8"])
    from liveavatar.serve.settings import ServeSettings

    options = groups_module.EngineOptions.of(args)
    settings = ServeSettings(options=options)
    budget = args.gpu_memory  # as generate parses it (one GiB figure, or one per GPU)
    assert (
        budget
        and settings.engine_options().gpu_memory == budget
        and settings.engine_options().enable_vae_parallel is False
    )
    assert ServeSettings(options=options, engine="preview").engine_options().engine == "preview"
    job = settings.engine_options().config(image=Path("i.png"), audio=Path("a.wav"), sample_steps=2)
    assert (job.gpu_memory, job.fp8, job.sample_steps) == (budget, True, 2)
    with pytest.raises(TypeError):  # a request cannot override the server's engine options
        settings.engine_options().config(image=Path("i.png"), audio=Path("a.wav"), fp8=False)


def test_groups_do_not_overlap_where_they_must_not():
    assert not set(in_group(ENGINE_OPTION)) & set(in_group(PER_REQUEST))  # a request never rebuilds the engine
    with pytest.raises(ValueError):
        option(help="x", groups=("engine",))  # a misspelt group is refused where it is declared


def test_a_newly_tagged_option_reaches_every_list(monkeypatch, portrait_path, speech_path):
    from liveavatar.planning.memory import finish_command
    from liveavatar.resume import run_settings
    from liveavatar.serve.uploads import request_options

    extended = dataclasses.make_dataclass(
        "Extended",
        [("new_knob", "int | None", option(type=positive_int, groups=GROUPS, doctor_default=3, help="a knob"))],
        bases=(GenerateConfig,),
        frozen=True,
    )
    monkeypatch.setattr(groups_module, "option_fields", lambda: dataclasses.fields(extended))
    monkeypatch.setattr(options_module, "option_fields", lambda: dataclasses.fields(extended))

    for group in GROUPS:
        assert "new_knob" in in_group(group)
    assert "new_knob" in _config_flags(_subparser("serve"))
    assert _subparser("doctor").parse_args([]).new_knob == 3 == doctor_defaults()["new_knob"]
    assert "new_knob" in request_options() and request_options()["new_knob"]("5") == 5
    assert "new_knob" in {f.name for f in dataclasses.fields(engine_options_type())}
    config = extended(image=portrait_path, audio=speech_path, new_knob=5).resolve()
    assert run_settings(config, _plan())["--new_knob"] == 5
    assert "--new_knob 5" in finish_command(config, 704, 384)


def test_the_resume_identity_keeps_the_record_format(portrait_path, speech_path):
    """Records written before the tags existed must still match: the same keys, the same values."""
    from liveavatar.resume import run_settings, sha256_file, sha_text

    config = GenerateConfig(image=portrait_path, audio=speech_path, prompt="hi", transcript="hello").resolve()
    plan = _plan()
    settings = run_settings(config, plan)
    assert settings["--image"] == sha256_file(portrait_path) and settings["--prompt"] == sha_text(plan.prompt)
    assert settings["--size"] == "384*256" and settings["--infer_frames"] == 48 and settings["--num_clip"] == 2
    assert settings["--base_seed"] == 7 and settings["--transcript"] == sha_text("hello")
    assert (
        settings["--engine"] == "preview"
        and settings["--fp8"] is False
        and "--ckpt_dir/--lora_path_dmd" not in settings
    )


def test_doctor_refuses_what_generate_refuses(capsys):
    from liveavatar.cli import main

    assert main(["doctor", "--no_collective", "--sample_steps", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --sample_steps")
