"""The analytics reports: sessions, time buckets and clients (see :mod:`llmreq_mongo.analytics`).

Sessions and clients also carry what their calls' responses add up to:
tokens, errors and, given a price table, the cost (see :mod:`.measures`
and :mod:`.prices`). Token sums are grouped per model first, so that each
model's tokens get that model's price.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bson import ObjectId

from llmreq_mongo._checks import check_count, check_session_key, check_window, client_ref
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import decode_payload, payload_path, scoped_match
from llmreq_mongo._time import to_utc_ms
from llmreq_mongo._types import ClientRef
from llmreq_mongo.errors import InvalidInput, storage_errors

from .measures import MODEL, call_sums, model_entry, model_tokens, reported, tokens
from .measures import regrouped_sums as sums_of
from .prices import Price, check_prices, priced

__all__ = [
    "ClientUsage",
    "CountBucket",
    "SessionSummary",
    "client_usage",
    "request_counts",
    "session_summaries",
    "top_sessions",
]

_MAX_ROWS = 10_000
_MEASURES = ("requests", "input_tokens", "output_tokens")
_MAX_BUCKETS = 100_000
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class SessionSummary:
    """One session of one client.

    Attributes:
        session_key: the session.
        llm_client_id: the client that handled its requests.
        requests: how many raw requests it holds (in the window asked for).
        first_at: the first request's ``created_at`` (UTC).
        last_at: the last request's ``created_at`` (UTC).
        group: the ``group_by`` value (None without ``group_by``, or when the
            payload lacks the field).
        input_tokens: the input tokens its calls reported; None when none of
            them reported any (never 0 for "not reported").
        output_tokens: the output tokens, likewise.
        errors: how many of its calls failed: a response with an ``error``,
            or an HTTP status of 400 or more.
        cost: the cost of its tokens under the ``prices`` given (None
            without ``prices``, or when no priced model reported tokens).
        unpriced_models: models whose calls reported tokens but have no price
            in ``prices`` (None for calls naming no model): ``cost`` leaves
            them out.
    """

    session_key: str
    llm_client_id: ObjectId
    requests: int
    first_at: dt.datetime
    last_at: dt.datetime
    group: Any = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    errors: int = 0
    cost: float | None = None
    unpriced_models: tuple[str | None, ...] = ()


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


@dataclass(frozen=True)
class ClientUsage:
    """What one client handled.

    Attributes:
        llm_client_id: the client.
        name: its name, or None if it has been deleted.
        requests: how many raw requests.
        sessions: how many distinct sessions (requests without a session key
            count as requests but not as a session).
        first_at: the first request's ``created_at`` (UTC).
        last_at: the last request's ``created_at`` (UTC).
        input_tokens: the input tokens its calls reported; None when none of
            them reported any.
        output_tokens: the output tokens, likewise.
        errors: how many of its calls failed (an ``error``, or a status of
            400 or more).
        cost: the cost of its tokens under the ``prices`` given (see
            :class:`SessionSummary`).
        unpriced_models: models with tokens but no price (see
            :class:`SessionSummary`).
    """

    llm_client_id: ObjectId
    name: str | None
    requests: int
    sessions: int
    first_at: dt.datetime
    last_at: dt.datetime
    input_tokens: int | None = None
    output_tokens: int | None = None
    errors: int = 0
    cost: float | None = None
    unpriced_models: tuple[str | None, ...] = ()


async def _run(pipeline: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    with storage_errors(f"compute {what}"):
        cursor = await LLMClientRequest.get_pymongo_collection().aggregate(pipeline)
        rows: list[dict[str, Any]] = await cursor.to_list(None)
    return rows


def _group_value(key: Mapping[str, Any]) -> Any:
    # A missing payload field leaves the key out of the group's _id.
    return decode_payload(key.get("g"))


# -- sessions -------------------------------------------------------------------


def _sessions_pipeline(
    *,
    llm_client: ClientRef | None,
    since: Any,
    until: Any,
    limit: int,
    group_by: Any,
    order: Literal["recent", "busiest"],
) -> list[dict[str, Any]]:
    start, end = check_window(since, until)
    client_id = client_ref(llm_client, model=LLMClient)
    key: dict[str, Any] = {"s": "$session_key", "c": "$llm_client_id"}
    if group_by is not None:
        key["g"] = "$" + payload_path(group_by)
    sort: dict[str, Any] = (
        {"last_at": -1, "_id": 1}
        if order == "recent"
        else {"requests": -1, "last_at": -1, "_id": 1}
    )
    return [
        *scoped_match(
            client_id=client_id, since=start, until=end, extra={"session_key": {"$ne": None}}
        ),
        {
            "$group": {
                "_id": {**key, "m": MODEL},
                "requests": {"$sum": 1},
                "first_at": {"$min": "$created_at"},
                "last_at": {"$max": "$created_at"},
                **call_sums(),
            }
        },
        {
            "$group": {
                "_id": {name: f"$_id.{name}" for name in key},
                "requests": {"$sum": "$requests"},
                "first_at": {"$min": "$first_at"},
                "last_at": {"$max": "$last_at"},
                **sums_of(),
                "models": {"$push": model_entry()},
            }
        },
        {"$sort": sort},
        {"$limit": limit},
    ]


def _summaries(rows: list[dict[str, Any]], prices: dict[str, Price] | None) -> list[SessionSummary]:
    out = []
    for row in rows:
        cost = priced(prices, model_tokens(row["models"]))
        out.append(
            SessionSummary(
                session_key=row["_id"]["s"],
                llm_client_id=row["_id"]["c"],
                requests=int(row["requests"]),
                first_at=to_utc_ms(row["first_at"]),
                last_at=to_utc_ms(row["last_at"]),
                group=_group_value(row["_id"]),
                input_tokens=tokens(row, "input_tokens"),
                output_tokens=tokens(row, "output_tokens"),
                errors=int(row["errors"]),
                cost=cost.cost,
                unpriced_models=cost.unpriced_models,
            )
        )
    return out


async def session_summaries(
    *,
    llm_client: ClientRef | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    group_by: str | None = None,
    prices: Mapping[str, Price] | None = None,
) -> list[SessionSummary]:
    """Sessions, most recently active first: requests, first and last request,
    tokens, errors, and the cost under ``prices``.

    Args:
        llm_client: only this client (an ``LLMClient``, ``ObjectId`` or hex id).
        since: count requests created at or after this instant.
        until: count requests created before this instant.
        limit: at most this many sessions (1 to 10,000).
        group_by: a payload field (``"model"``, ``"options__temperature"``):
            one summary per session and value.
        prices: model name to :class:`Price`; fills in ``cost``.

    Raises:
        InvalidInput: a naive datetime, ``since >= until``, a bad client,
            ``limit`` out of range, a bad ``group_by`` path or price table.
    """
    table = check_prices(prices)
    pipeline = _sessions_pipeline(
        llm_client=llm_client,
        since=since,
        until=until,
        limit=check_count("limit", limit, maximum=_MAX_ROWS),
        group_by=group_by,
        order="recent",
    )
    return _summaries(await _run(pipeline, "session summaries"), table)


async def top_sessions(
    *,
    n: int = 10,
    llm_client: ClientRef | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    prices: Mapping[str, Price] | None = None,
) -> list[SessionSummary]:
    """The ``n`` sessions with the most requests, busiest first (fields as
    :func:`session_summaries` gives them).

    Raises:
        InvalidInput: a naive datetime, ``since >= until``, a bad client,
            ``n`` out of 1..10,000, or a bad price table.
    """
    table = check_prices(prices)
    pipeline = _sessions_pipeline(
        llm_client=llm_client,
        since=since,
        until=until,
        limit=check_count("n", n, maximum=_MAX_ROWS),
        group_by=None,
        order="busiest",
    )
    return _summaries(await _run(pipeline, "the top sessions"), table)


# -- time buckets ---------------------------------------------------------------


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
            current += dt.timedelta(hours=1)
    else:
        day = first.astimezone(zone).date()
        while True:
            start = dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(_UTC)
            if start >= stop:
                break
            starts.append(start)
            day += dt.timedelta(days=1)
    return starts


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
    rows = await _run(pipeline, "request counts")
    empty = 0 if measure == "requests" else None
    counts: dict[tuple[Any, dt.datetime], int | None] = {}
    groups: dict[Any, Any] = {}
    for row in rows:
        value = _group_value(row["_id"]) if group_by is not None else None
        marker = repr(value)  # group values may be unhashable (lists, objects)
        groups.setdefault(marker, value)
        counts[(marker, to_utc_ms(row["_id"]["t"]))] = _bucket_count(row, measure)
    if not counts and (start is None or end is None):
        return []
    instants = {instant for _, instant in counts}
    first = _floor(start if start is not None else min(instants), by, zone)
    stop = end if end is not None else max(instants) + dt.timedelta(microseconds=1)
    # With one bound only, the span runs to the first or last request: check it too.
    _check_bucket_count(first, stop, by)
    starts = sorted(set(_bucket_starts(first, stop, by, zone)) | instants)
    if group_by is None:
        groups = {repr(None): None}
    return [
        CountBucket(
            start=instant.astimezone(zone), count=counts.get((marker, instant), empty), group=value
        )
        for instant in starts
        for marker, value in groups.items()
    ]


# -- clients --------------------------------------------------------------------


def _usage_pipeline(*, since: Any, until: Any) -> list[dict[str, Any]]:
    start, end = check_window(since, until)
    first_of_session = {"$eq": ["$k", 0]}
    return [
        *scoped_match(since=start, until=end),
        {
            "$group": {
                "_id": {"c": "$llm_client_id", "s": "$session_key", "m": MODEL},
                "requests": {"$sum": 1},
                "first_at": {"$min": "$created_at"},
                "last_at": {"$max": "$created_at"},
                **call_sums(),
            }
        },
        {
            "$group": {
                "_id": {"c": "$_id.c", "s": "$_id.s"},
                "requests": {"$sum": "$requests"},
                "first_at": {"$min": "$first_at"},
                "last_at": {"$max": "$last_at"},
                "errors": {"$sum": "$errors"},
                "models": {"$push": model_entry()},
            }
        },
        # One row per (session, model), then per (client, model): the token
        # sums stay per model for the prices, while a session's requests and
        # errors are counted once, on its first model's row (k == 0).
        {"$unwind": {"path": "$models", "includeArrayIndex": "k"}},
        {
            "$group": {
                "_id": {"c": "$_id.c", "m": "$models.m"},
                "requests": {"$sum": {"$cond": [first_of_session, "$requests", 0]}},
                "sessions": {
                    "$sum": {
                        "$cond": [{"$and": [first_of_session, {"$ne": ["$_id.s", None]}]}, 1, 0]
                    }
                },
                "first_at": {"$min": "$first_at"},
                "last_at": {"$max": "$last_at"},
                "errors": {"$sum": {"$cond": [first_of_session, "$errors", 0]}},
                **{name: {"$sum": f"$models.{name}"} for name in sums_of() if name != "errors"},
            }
        },
        {
            "$group": {
                "_id": "$_id.c",
                "requests": {"$sum": "$requests"},
                "sessions": {"$sum": "$sessions"},
                "first_at": {"$min": "$first_at"},
                "last_at": {"$max": "$last_at"},
                **sums_of(),
                "models": {"$push": model_entry()},
            }
        },
        {"$sort": {"requests": -1, "_id": 1}},
        {
            "$lookup": {
                "from": LLMClient.get_collection_name(),
                "localField": "_id",
                "foreignField": "_id",
                "as": "client",
            }
        },
    ]


async def client_usage(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    prices: Mapping[str, Price] | None = None,
) -> list[ClientUsage]:
    """Per client: requests, distinct sessions, first and last seen, tokens,
    errors and the cost under ``prices``; busiest first.

    Args:
        since: count requests created at or after this instant.
        until: count requests created before this instant.
        prices: model name to :class:`Price`; fills in ``cost``.

    Raises:
        InvalidInput: a naive datetime, ``since >= until``, or a bad price table.
    """
    table = check_prices(prices)
    rows = await _run(_usage_pipeline(since=since, until=until), "client usage")
    out = []
    for row in rows:
        cost = priced(table, model_tokens(row["models"]))
        out.append(
            ClientUsage(
                llm_client_id=row["_id"],
                name=row["client"][0].get("name") if row["client"] else None,
                requests=int(row["requests"]),
                sessions=int(row["sessions"]),
                first_at=to_utc_ms(row["first_at"]),
                last_at=to_utc_ms(row["last_at"]),
                input_tokens=tokens(row, "input_tokens"),
                output_tokens=tokens(row, "output_tokens"),
                errors=int(row["errors"]),
                cost=cost.cost,
                unpriced_models=cost.unpriced_models,
            )
        )
    return out
