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
    if not path.is_file():  # opening a named pipe would wait for a writer forever
        raise UserError(
            flag, f"{path} is a named pipe or device, not a regular file", f"save the data to a file first; {fix}"
        )
    if path.stat().st_size == 0:
        raise UserError(flag, f"{path} is empty", fix)
