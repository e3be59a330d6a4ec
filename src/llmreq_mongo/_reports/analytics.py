"""The analytics reports on sessions and clients (see :mod:`llmreq_mongo.analytics`).

Requests per time bucket are in :mod:`.buckets`.

Sessions and clients also carry what their calls' responses add up to:
tokens, errors and, given a price table, the cost (see :mod:`.measures`
and :mod:`.prices`). Token sums are grouped per model first, so that each
model's tokens get that model's price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bson import ObjectId

from llmreq_mongo._checks import check_count, check_window, client_ref
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._queries import payload_path, scoped_match
from llmreq_mongo._time import to_utc_ms
from llmreq_mongo._types import ClientRef

from .measures import MODEL, call_sums, model_entry, model_tokens, tokens
from .measures import regrouped_sums as sums_of
from .prices import Price, check_prices, priced
from .reading import group_value, run_report

__all__ = [
    "ClientUsage",
    "SessionSummary",
    "client_usage",
    "session_summaries",
    "top_sessions",
]

_MAX_ROWS = 10_000


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


def _response_figures(row: dict[str, Any], prices: dict[str, Price] | None) -> dict[str, Any]:
    """A report row's token sums, error count and cost: the fields every summary shares."""
    cost = priced(prices, model_tokens(row["models"]))
    return {
        "input_tokens": tokens(row, "input_tokens"),
        "output_tokens": tokens(row, "output_tokens"),
        "errors": int(row["errors"]),
        "cost": cost.cost,
        "unpriced_models": cost.unpriced_models,
    }


def _summaries(rows: list[dict[str, Any]], prices: dict[str, Price] | None) -> list[SessionSummary]:
    out = []
    for row in rows:
        out.append(
            SessionSummary(
                session_key=row["_id"]["s"],
                llm_client_id=row["_id"]["c"],
                requests=int(row["requests"]),
                first_at=to_utc_ms(row["first_at"]),
                last_at=to_utc_ms(row["last_at"]),
                group=group_value(row["_id"]),
                **_response_figures(row, prices),
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
    return _summaries(await run_report(pipeline, "session summaries"), table)


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
    return _summaries(await run_report(pipeline, "the top sessions"), table)


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
    rows = await run_report(_usage_pipeline(since=since, until=until), "client usage")
    out = []
    for row in rows:
        out.append(
            ClientUsage(
                llm_client_id=row["_id"],
                name=row["client"][0].get("name") if row["client"] else None,
                requests=int(row["requests"]),
                sessions=int(row["sessions"]),
                first_at=to_utc_ms(row["first_at"]),
                last_at=to_utc_ms(row["last_at"]),
                **_response_figures(row, table),
            )
        )
    return out
