"""Types for management commands' options: each checks a value where it enters.

The project's commands (events.commands) report a value these refuse as one line naming
the option, e.g. `error: argument --batch-size: must be a whole number from 1 to 50000,
got '-5'`, and exit with status 2 before the command has read or written anything.
"""

import math
import os
from argparse import ArgumentTypeError
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from events.rate_limits import parse_rate

# What --rate accepts besides a rate: no limit at all.
UNLIMITED = ("none", "unlimited")


def whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = minimum - 1
        if not minimum <= number <= maximum:
            raise ArgumentTypeError(
                f"must be a whole number from {minimum} to {maximum}, got {text!r}"
            )
        return number

    return parse


def seconds(minimum: float, maximum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not minimum <= number <= maximum:  # NaN fails too
            raise ArgumentTypeError(
                f"must be a number of seconds from {minimum:g} to {maximum:g}, got {text!r}"
            )
        return number

    return parse


def rate_or_unlimited(text: str) -> str:
    """A rate as events.rate_limits reads it, kept as written, or "" for no limit."""
    if text.strip().lower() in UNLIMITED:
        return ""
    try:
        parse_rate(text, setting="")
    except ImproperlyConfigured:
        raise ArgumentTypeError(
            f"must be a rate such as 10/s, 600/min or 5/10s, above zero, or 'unlimited', "
            f"got {text!r}"
        ) from None
    return text.strip()


def folder(text: str) -> Path:
    """A folder that exists or can be created (nothing else is in the way)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ArgumentTypeError(f"must be a folder, got {text!r}, which is a file")
    return path


def readable_file(text: str) -> Path:
    """A file that exists and this process may read, as an absolute path."""
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise ArgumentTypeError(f"must be a file that exists, got {text!r}, which does not")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ArgumentTypeError(f"must be a file, got {text!r}, which is {kind}")
    if not os.access(path, os.R_OK):
        raise ArgumentTypeError(f"must be a file this user can read, got {text!r}")
    return path
