"""The option groups that GenerateConfig's fields declare (config.option(groups=...)), read back:
every list of options (serve's engine flags, per-request options, the resume identity, doctor's
flags) and the EngineOptions record are derived here from those tags, never written twice."""

from __future__ import annotations

import dataclasses
from typing import Any

from liveavatar.config import DOCTOR, ENGINE_OPTION, GROUPS, GenerateConfig


def option_fields() -> tuple[dataclasses.Field, ...]:
    """GenerateConfig's fields in declaration order: each one is a flag ``--<name>`` (the one source
    every option list below reads)."""
    return dataclasses.fields(GenerateConfig)


def in_group(group: str) -> tuple[str, ...]:
    """The names of the options that declare ``group`` (one of GROUPS), in declaration order."""
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}; known: {GROUPS}")
    return tuple(f.name for f in option_fields() if group in f.metadata["groups"])


def unset_value(f: dataclasses.Field) -> Any:
    """What option ``f`` is when nobody sets it: its fallback, else its default (None when required)."""
    if f.metadata["fallback"] is not None:
        return f.metadata["fallback"]
    return None if f.default is dataclasses.MISSING else f.default


def doctor_defaults() -> dict[str, Any]:
    """The planned run `doctor` assumes: each DOCTOR option's doctor_default, else its unset value."""
    out = {}
    for f in option_fields():
        if DOCTOR in f.metadata["groups"]:
            meta = f.metadata
            out[f.name] = meta["doctor_default"] if meta["doctor_default"] is not None else unset_value(f)
    return out


class _EngineOptionsMethods:
    """The methods of :data:`EngineOptions` (its fields are generated from the tags below)."""

    # A resident engine serves every step count: each request's own is checked when it is planned.
    sample_steps = None

    @classmethod
    def of(cls, source: Any) -> Any:
        """The engine options of ``source``: a GenerateConfig, or a namespace parsed by generate's flags."""
        return cls(**{f.name: getattr(source, f.name) for f in dataclasses.fields(cls)})

    def values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def config(self, **request: Any) -> GenerateConfig:
        """The GenerateConfig of one run on this engine: these options plus the request's (which may
        not repeat an engine option: that is a TypeError, not a silent override)."""
        return GenerateConfig(**self.values(), **request)


def engine_options_type() -> type:
    """A frozen record of GenerateConfig's ENGINE_OPTION fields (same names, types and defaults),
    built from the tags so a newly tagged option is in it without a second list."""
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default))
        for f in option_fields()
        if ENGINE_OPTION in f.metadata["groups"]
    ]
    return dataclasses.make_dataclass(
        "EngineOptions", fields, bases=(_EngineOptionsMethods,), frozen=True, namespace={"__module__": __name__}
    )


# What `serve` keeps for its resident engine and builds every job's GenerateConfig from (see above).
EngineOptions = engine_options_type()
