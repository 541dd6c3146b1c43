"""Show findings: grouped human text (coloured with rich on a terminal) or one JSON object."""

from __future__ import annotations

import json
from typing import IO, Any

from liveavatar.checks.findings import INPUTS, Finding, has_error

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def to_json(findings: list[Finding]) -> str:
    return json.dumps({"ok": not has_error(findings), "findings": [f.to_dict() for f in findings]}, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def print_human(findings: list[Finding], checked: list[str], file: IO[str] | None = None) -> None:
    """Grouped report; rich decides whether the stream is a terminal (colour) or not (plain)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(file=file, highlight=False, soft_wrap=True)
    for name in INPUTS:
        if name not in checked:
            continue
        group = [f for f in findings if f.input == name]
        head = f"[bold]{name}[/bold]"
        if not group:
            console.print(f"{head}: [green]ok[/green]")
            continue
        console.print(f"{head}:")
        for f in group:
            style = _STYLE[f.severity]
            console.print(f"  [{style}]{f.severity}[/{style}] {escape(f.code)}: {escape(f.message)}")
            if f.measured is not None or f.expected is not None:
                console.print(f"      measured: {escape(_fmt(f.measured))}; expected: {escape(_fmt(f.expected))}")
            if f.fix:
                console.print(f"      fix: {escape(f.fix)}")
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    verdict = (
        "[bold red]not usable[/bold red]"
        if errors
        else ("[yellow]usable, with warnings[/yellow]" if warnings else "[green]all good[/green]")
    )
    console.print(f"{errors} error(s), {warnings} warning(s): {verdict}")
