"""generate's flags, built from GenerateConfig's fields; any front-end (generate, serve) registers them."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

from liveavatar.argtypes import boolean
from liveavatar.config import GenerateConfig
from liveavatar.media.text import prompt_text
from liveavatar.option_groups import option_fields


def config_options() -> list[dataclasses.Field]:
    """The fields of GenerateConfig, in declaration order: each one is a flag ``--<name>``."""
    return list(option_fields())


def _default_text(f: dataclasses.Field) -> str | None:
    meta = f.metadata
    if meta["required"]:
        return None
    if meta["shown"] is not None:
        return meta["shown"]
    return _value_text(f, meta["fallback"] if meta["fallback"] is not None else f.default)


def _value_text(f: dataclasses.Field, value: Any) -> str | None:
    if f.metadata["kind"] in ("bool", "switch"):
        return "on" if value else "off"
    return None if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def help_text(f: dataclasses.Field, default: Any = None) -> str:
    """The field's help and its default (``default``: another front-end's own, shown instead)."""
    shown = _default_text(f) if default is None else _value_text(f, default)
    return f.metadata["help"] + (f" (default: {shown})" if shown and f.metadata["kind"] != "switch" else "")


def add_generate_options(
    parser: argparse.ArgumentParser,
    skip: Collection[str] = (),
    only: Collection[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add one flag per GenerateConfig field (those in ``only`` if given, less those in ``skip``) to ``parser``.

    Unset flags parse to the field's default (``None`` for "not given"), so a namespace turns back
    into a config with :func:`config_from_args`; ``defaults`` replaces that for the names it has
    (a front-end that needs a concrete value, e.g. doctor's planned run), in the help as well.
    """
    defaults = defaults or {}
    for f in config_options():
        if f.name in skip or (only is not None and f.name not in only):
            continue
        meta = f.metadata
        kwargs: dict = {"help": help_text(f, defaults.get(f.name))}
        if meta["kind"] == "switch":
            kwargs.update(action="store_true")
        else:
            if meta["kind"] == "bool":
                kwargs.update(type=boolean, nargs="?", const=True, metavar="BOOL")
            elif meta["type"] is not None:
                kwargs["type"] = meta["type"]
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
            if meta["required"]:
                kwargs["required"] = True
            else:
                kwargs["default"] = defaults.get(f.name, f.default)
        parser.add_argument(f"--{f.name}", **kwargs)


def value_parser(name: str) -> Callable[[str], Any]:
    """How a text value of option ``name`` becomes the field's value (argparse's type, with its
    choices checked), for front-ends that receive options as text (the server's form fields)."""
    meta = next(f for f in config_options() if f.name == name).metadata
    convert = boolean if meta["kind"] in ("bool", "switch") else meta["type"] or str
    if not meta["choices"]:
        return convert

    def chosen(text: str) -> Any:
        value = convert(text)
        if value not in meta["choices"]:
            raise argparse.ArgumentTypeError(f"'{text}' is not one of: {', '.join(meta['choices'])}")
        return value

    return chosen


def config_from_args(args: argparse.Namespace, **overrides) -> GenerateConfig:
    """The GenerateConfig a parsed namespace (from :func:`add_generate_options`) asks for."""
    values = {f.name: getattr(args, f.name) for f in config_options() if hasattr(args, f.name)}
    values.update(overrides)
    if "prompt" in values:
        values["prompt"] = prompt_text(values["prompt"]) or ""
    return GenerateConfig(**values)
