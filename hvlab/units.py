"""Byte sizes as a lab file writes them ("512MB", "4GB", 536870912)."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B)?\s*$", re.IGNORECASE)

MB = 1024**2
GB = 1024**3


def parse_size(value: int | str) -> int:
    """Return a size in bytes; accepts an int or a string like ``"512MB"`` / ``"4 GB"``.

    Raises ValueError with a message that names the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; write bytes or a number with KB/MB/GB/TB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative; a size must be positive")
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a size; write bytes or a number with KB/MB/GB/TB")
    number, unit = match.groups()
    return int(number) * _UNITS[(unit or "").upper()]


def format_size(value: int) -> str:
    """The shortest exact form of a size in bytes: 536870912 -> ``"512MB"``."""
    for unit in ("TB", "GB", "MB", "KB"):
        factor = _UNITS[unit]
        if value and value % factor == 0:
            return f"{value // factor}{unit}"
    return f"{value}B"
