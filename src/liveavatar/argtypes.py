"""argparse value types whose messages name the fix."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number; give a positive whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; give a positive whole number")
    return value


def any_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def number(text: str) -> float:
    """A finite float: 'nan', 'inf' and overflowing literals ('1e309') are refused here, the one place
    every command's and the server's numbers pass through, so no NaN reaches a plan, a record or JSON."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number; give an ordinary number such as 3 or 0.5")
    return value


def gib_list(text: str) -> tuple[float, ...]:
    """GiB per GPU: one number for every GPU, or a comma-separated list, one per GPU in device order."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(number(p) for p in parts)  # finite, as every number
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a number of GiB or a comma-separated list of finite ones, e.g. 24 or 24,24,80"
        ) from None
    return values


def boolean(text: str) -> bool:
    """Upstream's str2bool: True/False, yes/no, 1/0."""
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "1", "on"}:
        return True
    if lowered in {"false", "no", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not True or False")
