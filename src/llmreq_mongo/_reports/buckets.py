"""``request_counts``: requests, or tokens, per hour or day of a time zone.

See :mod:`llmreq_mongo.analytics`. Token sums follow the rule of
:mod:`.measures`: a bucket where no call reported the count holds None.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from llmreq_mongo._checks import check_session_key, check_window, client_ref
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._queries import payload_path, scoped_match
from llmreq_mongo._time import to_utc_ms
from llmreq_mongo._types import ClientRef
from llmreq_mongo.errors import InvalidInput

from .measures import reported
from .reading import group_value, run_report

__all__ = ["CountBucket", "request_counts"]

_MAX_BUCKETS = 100_000
_MEASURES = ("requests", "input_tokens", "output_tokens")
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class CountBucket:
    """The number of raw requests in one hour or day.

    Attributes:
        start: the bucket's first instant, in the time zone asked for.
        count: how many requests it holds (0 for an empty bucket); with
            ``measure="input_tokens"`` or ``"output_tokens"``, the sum of that
            count over its calls, None when none of them reported it (an
            empty bucket included).
        group: the ``group_by`` value (None without ``group_by``).
    """

    start: dt.datetime
    count: int | None
    group: Any = None


def _zone(tz: Any) -> zoneinfo.ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise InvalidInput(f"tz must be an IANA time zone name such as 'UTC', got {tz!r}")
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"unknown time zone {tz!r}; use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


def _floor(instant: dt.datetime, by: str, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    local = instant.astimezone(zone)
    if by == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return dt.datetime(local.year, local.month, local.day, tzinfo=zone)


def _bucket_starts(
    first: dt.datetime, stop: dt.datetime, by: str, zone: zoneinfo.ZoneInfo
) -> list[dt.datetime]:
    """Every bucket start from ``first`` (a bucket start) while before ``stop``."""
    starts: list[dt.datetime] = []
    if by == "hour":
        # Absolute steps: a local hour is an hour long even across DST changes.
        current = first.astimezone(_UTC)
        while current < stop:
            starts.append(current)
            if current.replace(tzinfo=None) > _LAST_HOUR:
                break  # the last hour Python's datetimes hold
            current += dt.timedelta(hours=1)
    else:
        day = first.astimezone(zone).date()
        while True:
            start = dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(_UTC)
            if start >= stop:
                break
            starts.append(start)
            if day == dt.date.max:
                break
            day += dt.timedelta(days=1)
    return starts


#: The start of the last whole hour a datetime holds (9999-12-31 23:00).
_LAST_HOUR = dt.datetime.max - dt.timedelta(hours=1)


def _check_bucket_count(start: dt.datetime, end: dt.datetime, by: str) -> None:
    unit = dt.timedelta(hours=1 if by == "hour" else 24)
    if (end - start) / unit > _MAX_BUCKETS:
        raise InvalidInput(
            f"the window holds more than {_MAX_BUCKETS:,} {by} buckets; narrow it"
            + (" or count by day" if by == "hour" else "")
        )


def _counts_pipeline(
    *,
    by: Any,
    llm_client: ClientRef | None,
    session_key: Any,
    since: Any,
    until: Any,
    tz: Any,
    group_by: Any,
    measure: Any = "requests",
) -> tuple[list[dict[str, Any]], zoneinfo.ZoneInfo, dt.datetime | None, dt.datetime | None]:
    if by not in ("day", "hour"):
        raise InvalidInput(f"by must be 'day' or 'hour', got {by!r}")
    if not isinstance(measure, str) or measure not in _MEASURES:
        raise InvalidInput(
            f"measure must be 'requests', 'input_tokens' or 'output_tokens', got {measure!r}"
        )
    start, end = check_window(since, until)
    zone = _zone(tz)
    client_id = client_ref(llm_client, model=LLMClient)
    key = None if session_key is None else check_session_key(session_key, nullable=False)
    if start is not None and end is not None:
        _check_bucket_count(start, end, by)
    with _within_years(tz):
        for bound in (start, end):
            if bound is not None:
                _floor(bound, by, zone)
    group: dict[str, Any] = {
        "t": {"$dateTrunc": {"date": "$created_at", "unit": by, "timezone": tz}}
    }
    if group_by is not None:
        group["g"] = "$" + payload_path(group_by)
    pipeline = [
        *scoped_match(session_key=key, client_id=client_id, since=start, until=end),
        {"$group": {"_id": group, **_measured(measure)}},
    ]
    return pipeline, zone, start, end


def _measured(measure: str) -> dict[str, Any]:
    """The accumulators of one bucket: ``count``, and for tokens ``n``, the reporting calls."""
    if measure == "requests":
        return {"count": {"$sum": 1}}
    return {"count": {"$sum": f"$response.usage.{measure}"}, "n": {"$sum": reported(measure)}}


def _bucket_count(row: dict[str, Any], measure: str) -> int | None:
    if measure != "requests" and not row["n"]:
        return None  # no call of the bucket reported the count: unknown, not 0
    return int(row["count"])


async def request_counts(
    *,
    by: Literal["day", "hour"] = "day",
    llm_client: ClientRef | None = None,
    session_key: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    tz: str = "UTC",
    group_by: str | None = None,
    measure: Literal["requests", "input_tokens", "output_tokens"] = "requests",
) -> list[CountBucket]:
    """Requests (or tokens) per day or hour, oldest first, empty buckets included.

    Buckets are days or hours of the time zone ``tz`` (a day in
    ``"Europe/Paris"`` starts at midnight there). With ``since`` and
    ``until`` every bucket of the window is listed; without them the list
    runs from the first bucket holding a request to the last one. With
    ``group_by``, each value of that payload field gets its own series
    (ordered by start, then by first appearance of the value).

    ``measure`` says what a bucket's ``count`` is: its requests, or the sum
    of the ``input_tokens`` or ``output_tokens`` its calls' responses
    reported. A token bucket where no call reported the count holds None,
    never 0.

    Raises:
        InvalidInput: ``by`` not ``"day"``/``"hour"``, an unknown time zone, a
            naive datetime, ``since >= until``, a window of over 100,000
            buckets, a non-string session key, a bad client or path, or an
            unknown ``measure``.
    """
    pipeline, zone, start, end = _counts_pipeline(
        by=by,
        llm_client=llm_client,
        session_key=session_key,
        since=since,
        until=until,
        tz=tz,
        group_by=group_by,
        measure=measure,
    )
    rows = await run_report(pipeline, "request counts")
    empty = 0 if measure == "requests" else None
    counts: dict[tuple[Any, dt.datetime], int | None] = {}
    groups: dict[Any, Any] = {}
    for row in rows:
        value = group_value(row["_id"]) if group_by is not None else None
        marker = repr(value)  # group values may be unhashable (lists, objects)
        groups.setdefault(marker, value)
        counts[(marker, to_utc_ms(row["_id"]["t"]))] = _bucket_count(row, measure)
    if not counts and (start is None or end is None):
        return []
    instants = {instant for _, instant in counts}
    with _within_years(tz):
        first = _floor(start if start is not None else min(instants), by, zone)
        stop = end if end is not None else max(instants) + dt.timedelta(microseconds=1)
        # With one bound only, the span runs to the first or last request: check it too.
        _check_bucket_count(first, stop, by)
        starts = sorted(set(_bucket_starts(first, stop, by, zone)) | instants)
        if group_by is None:
            groups = {repr(None): None}
        return [
            CountBucket(
                start=instant.astimezone(zone),
                count=counts.get((marker, instant), empty),
                group=value,
            )
            for instant in starts
            for marker, value in groups.items()
        ]


@contextlib.contextmanager
def _within_years(tz: str) -> Iterator[None]:
    """Python's datetimes end at years 1 and 9999: a bucket past them is a refused window."""
    try:
        yield
    except OverflowError:
        raise InvalidInput(
            f"the window's buckets in the time zone {tz!r} reach outside years 1 to 9999, "
            "which dates cannot hold; narrow the window"
        ) from None
