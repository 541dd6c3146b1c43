"""The one way a bad input or option is reported to the user."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: reported as one line, exit code 2, no traceback.

    `input` names what is wrong (a flag such as ``--image``), `message` says what was found and
    `fix` says what to do about it.
    """

    exit_code = 2

    def __init__(self, input: str, message: str, fix: str) -> None:
        super().__init__(f"{input}: {message}")
        self.input = input
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        text = f"error: {self.input}: {self.message}; {self.fix}"
        return " ".join(text.split())
