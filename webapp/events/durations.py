"""Durations as staff read them in the admin: "45 s", "4 min", "2 h 5 min", "3 d 1 h"."""

from __future__ import annotations


def roughly(seconds: float) -> str:
    """The duration to its largest two units, rounded down (a stall of 4 min 50 s is
    "4 min": it has lasted at least that long)."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
