"""Durations as written in drkit's YAML and CLI: `30s`, `15m`, `1h`, `7d`, `4w` (or `1h30m`).

Units: s seconds, m minutes, h hours, d days, w weeks. Months and years are deliberately
absent: they have no fixed length, and a target or window written in them is ambiguous.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+[smhdw])+$")


def parse_duration(text: str) -> timedelta:
    """Parse `15m` or `1h30m` into a timedelta; raise ValueError with a helpful message."""
    s = str(text).strip()
    if not _WHOLE.match(s):
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, e.g. 30s, 15m, 1h, 7d, 4w")
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(s))
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be greater than zero")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float) -> str:
    """Render seconds the way a person reads them: `13m32s`, `2h05m`, `3d4h`, `41.2s`."""
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total < 60:
        return f"{sign}{total:.1f}s"
    secs = round(total)
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    if days:
        return f"{sign}{days}d{hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m{seconds:02d}s"
