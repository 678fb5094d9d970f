"""Argument checks shared by every settable property (one wording everywhere)."""

from __future__ import annotations

__all__ = ["byte_count", "positive", "seconds"]


def positive(name: str, value: int) -> int:
    """``value`` if it is a positive integer, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: {value!r} is not a positive integer")
    return value


def byte_count(name: str, value: int) -> int:
    """``value`` if it is a number of bytes (an int >= 0), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: {value!r} is not a number of bytes >= 0")
    return value


def seconds(name: str, value: float) -> float:
    """``value`` as a float if it is a number of seconds >= 0, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name}: {value!r} is not a number of seconds >= 0")
    return float(value)
