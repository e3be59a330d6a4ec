"""Durations (``90d``, ``12h``, ``1h30m``) and points in time, as the command line takes them.

A point in time is either ISO 8601 with a time zone (``2026-05-01T12:00:00Z``,
``2026-05-01T14:00:00+02:00``), a date alone (midnight UTC of that day), a
duration meaning "that long ago" (``7d``), or ``now``. A date and time without
a zone is refused: the command line never guesses a zone.
"""

from __future__ import annotations

import datetime as dt
import re

from llmreq_mongo._time import now_ms, to_utc_ms
from llmreq_mongo.errors import InvalidInput

__all__ = ["format_duration", "format_time", "in_utc", "parse_duration", "parse_time"]

UTC = dt.timezone.utc
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The largest duration accepted: a hundred years, far beyond any retention.
_MAX_SECONDS = 100 * 365 * 86400


def parse_duration(text: str, *, what: str = "duration") -> dt.timedelta:
    """Parse ``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or a sum such as ``1h30m``.

    Raises:
        InvalidInput: the text is not a positive duration of at most a hundred years.
    """
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise InvalidInput(
            f"{what} {text!r} is not a duration: write a number and a unit "
            "(s, m, h, d or w), for example 30m, 12h, 90d, 2w or 1h30m"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    if seconds <= 0:
        raise InvalidInput(f"{what} {text!r} is zero; give a positive duration such as 90d")
    if seconds > _MAX_SECONDS:
        raise InvalidInput(f"{what} {text!r} is longer than a hundred years; give a shorter one")
    return dt.timedelta(seconds=seconds)


def parse_time(text: str, *, what: str = "time", now: dt.datetime | None = None) -> dt.datetime:
    """Parse a point in time (see the module docstring); returns an aware UTC datetime.

    Raises:
        InvalidInput: the text is none of the accepted forms, or has no time zone.
    """
    value = text.strip()
    if not value:
        # `--since ''` (an unset shell variable, say) must not quietly mean
        # the command's default window.
        raise InvalidInput(f"{what} is empty: give a time such as 7d, 2026-05-01 or now")
    current = now or now_ms()
    if value.lower() == "now":
        return current
    if _DURATION.fullmatch(value.lower()):
        return to_utc_ms(current - parse_duration(value, what=what))
    if _DATE_ONLY.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{what} {text!r} is not a valid date") from None
        return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    iso = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        parsed = dt.datetime.fromisoformat(iso)
    except ValueError:
        raise InvalidInput(
            f"{what} {text!r} is not a time: use ISO 8601 with a zone "
            "(2026-05-01T12:00:00Z), a date (2026-05-01, midnight UTC), "
            "a duration ago (7d) or 'now'"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(
            f"{what} {text!r} has no time zone; add one (Z or +02:00) "
            "or give a date alone for midnight UTC"
        )
    return in_utc(parsed, what=f"{what} {text!r}")


def in_utc(value: dt.datetime, *, what: str) -> dt.datetime:
    """``value`` in UTC to the millisecond, refusing an instant UTC cannot hold.

    ``0001-01-01T00:00:00+14:00`` is a valid ISO 8601 time whose UTC instant
    falls before year 1, which Python (and BSON's dates as PyMongo reads them)
    cannot represent.

    Raises:
        InvalidInput: the instant is outside years 1 to 9999 in UTC.
    """
    try:
        return to_utc_ms(value)
    except OverflowError:
        raise InvalidInput(
            f"{what} is out of range: in UTC it falls outside the years 1 to 9999"
        ) from None


def format_time(value: dt.datetime) -> str:
    """``2026-05-01T12:00:00.123Z``: UTC, milliseconds, the form every command prints."""
    utc = to_utc_ms(value)
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def format_duration(seconds: int) -> str:
    """The shortest exact form of a whole number of seconds (``7776000`` -> ``90d``)."""
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    rest = seconds
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{count}{unit}")
    # Weeks read oddly for retention ("12w6d"): prefer days when it is whole days.
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    return "".join(parts)
