"""Reading inputs and writing the video."""

from __future__ import annotations

from pathlib import Path

from liveavatar.errors import UserError


def require_input_file(path: Path, flag: str, kind: str, fix: str) -> None:
    """A missing, folder or empty input is reported the same way for every input."""
    if not path.exists():
        raise UserError(flag, f"file not found: {path}", fix)
    if path.is_dir():
        raise UserError(flag, f"{path} is a folder, not {kind}", fix)
    if path.stat().st_size == 0:
        raise UserError(flag, f"{path} is empty", fix)
