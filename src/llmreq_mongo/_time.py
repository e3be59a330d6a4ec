"""Time: the current instant and the checks and conversions every stored time goes through.

BSON keeps milliseconds, so every time the library stores or compares is an
aware UTC datetime truncated to milliseconds; a document in memory after a
write then equals the one read back. Naive datetimes given by a caller are
refused everywhere with the same message.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from llmreq_mongo.errors import InvalidInput

__all__ = ["UTC", "aware_utc", "check_aware", "now_ms", "to_utc_ms"]

UTC = dt.timezone.utc


def to_utc_ms(value: dt.datetime) -> dt.datetime:
    """Return ``value`` in UTC, truncated to milliseconds.

    Naive values are read as UTC, which is what PyMongo returns from a client
    created without ``tz_aware=True``.
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
#: The last millisecond read and its datetime: every record written within
#: one millisecond shares one (a datetime never changes).
_LAST_MS: tuple[int, dt.datetime] = (-1, _EPOCH)


def now_ms() -> dt.datetime:
    """The current UTC time, truncated to milliseconds.

    Built once per millisecond: a burst of writes shares the datetime, which
    spares each the conversion ``datetime.now()`` makes.
    """
    global _LAST_MS
    ms = time.time_ns() // 1_000_000  # the clock datetime.now() reads
    last, value = _LAST_MS
    if ms != last:
        value = _EPOCH + dt.timedelta(milliseconds=ms)
        _LAST_MS = (ms, value)  # one assignment: threads see either pair whole
    return value


def aware_utc(name: str, value: Any, *, error: type[InvalidInput] = InvalidInput) -> dt.datetime:
    """Return ``value`` in UTC if it is a timezone-aware datetime.

    Every time given to the library (a lookup, a window bound) goes through
    here, so naive datetimes are refused the same way everywhere.

    Raises:
        error: not a datetime, a naive one, or one whose UTC time is out of
            Python's range (years 1 to 9999).
    """
    if not isinstance(value, dt.datetime):
        raise error(
            f"{name} must be a timezone-aware datetime, got a value of type {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise error(
            f"{name} is a naive datetime; pass a timezone-aware one, such as "
            "datetime.now(timezone.utc)"
        )
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00+14:00 is in Python's range, its UTC instant is not.
        raise error(
            f"{name} ({value.isoformat()}) is out of range: its UTC time falls outside "
            "years 1 to 9999; pass a time within them"
        ) from None


def check_aware(name: str, value: Any) -> dt.datetime | None:
    """Return an aware datetime in UTC (milliseconds, as BSON keeps), or None.

    Raises:
        InvalidInput: not a datetime, or a naive one.
    """
    if value is None:
        return None
    if type(value) is dt.datetime and value.tzinfo is UTC and value.microsecond % 1000 == 0:
        return value  # in UTC to the millisecond already, as now_ms() makes it
    return to_utc_ms(aware_utc(name, value))
