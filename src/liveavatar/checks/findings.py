"""The one shape every input check reports in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

INPUTS = ("image", "audio", "prompt", "consistency")
SEVERITIES = ("error", "warning", "info")
FLAGS = {"image": "--image", "audio": "--audio", "prompt": "--prompt", "consistency": "--prompt"}


@dataclass(frozen=True)
class Finding:
    """One measured problem (or note) about an input.

    ``measured`` and ``expected`` are JSON-friendly values (numbers, strings, short lists or
    dicts) so that a report can show what was found next to what the guide asks for.
    """

    input: str
    severity: str
    code: str
    message: str
    measured: Any = None
    expected: Any = None
    fix: str = ""

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"unknown input {self.input!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def flag(self) -> str:
        """The command-line flag this finding is about (``--image``, ``--audio``, ``--prompt``)."""
        return FLAGS[self.input]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_error(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
