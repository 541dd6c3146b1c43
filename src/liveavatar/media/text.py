"""Reading the prompt: the text itself, or ``@file`` in UTF-8 or any Unicode encoding with a BOM."""

from __future__ import annotations

import codecs
from pathlib import Path

from liveavatar.errors import UserError

MAX_PROMPT_BYTES = 1_000_000  # a prompt is a paragraph; a bigger file is not a prompt
# Longest BOM first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FIX = "save the prompt as plain UTF-8 text, or give the text itself"


def prompt_text(value: str | None, flag: str = "--prompt") -> str | None:
    """The prompt itself (stripped), or the text of ``@file``; None stays None."""
    if value is None:
        return None
    if not value.startswith("@"):
        return value.strip()
    return read_prompt_file(Path(value[1:]), flag)


def read_prompt_file(path: Path, flag: str = "--prompt") -> str:
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not found" if not path.exists() else "not a regular file"
        raise UserError(
            flag, f"prompt file {kind}: {path}", "give @path/to/prompt.txt of an existing file, or the text itself"
        )
    with open(path, "rb") as f:
        data = f.read(MAX_PROMPT_BYTES + 1)
    if len(data) > MAX_PROMPT_BYTES:
        raise UserError(flag, f"{path} is larger than {MAX_PROMPT_BYTES // 1000} kB: not a prompt", _FIX)
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise UserError(flag, f"{path} is not UTF-8 text (binary data or another encoding)", _FIX) from None
    if "\x00" in text:
        raise UserError(flag, f"{path} holds binary data, not text", _FIX)
    return text.strip()
