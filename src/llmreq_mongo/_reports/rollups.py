"""``aggregate_sessions``: one summary record per (client, session) and time window.

This is the reference's unfinished aggregation job. A rollup is an ordinary
``LLMClientRequest`` with ``is_aggregation=True``, the client and session of
the requests it summarises, and a JSON ``request``::

    {"window": {"since": "...", "until": "..."}, "count": 12,
     "first_at": "...", "last_at": "...", "messages": 31,
     "first_id": "...", "last_id": "...",
     "responses": 11, "input_tokens": 5120, "output_tokens": 800, "errors": 1,
     "latency_p50_ms": 412.0, "latency_max_ms": 2930.5}

The token sums are None when no call of the window reported that count
(never 0 for "not reported"); ``errors`` counts the calls whose response has
an ``error`` or a status of 400 or more; the latency figures (nearest-rank
median and maximum, see :mod:`.latency`) are None when no call had a
response. The latencies of one session's window are gathered in one
``$group`` row (8 bytes a call): a window holds at most about a million
calls of one session.

Its ``_id`` is derived from (client, session, since, until), so writing it is
an upsert on the primary key: running the same window again creates nothing,
and two runs racing over one window cannot create it twice.
When raw requests arrive in a window after it was rolled up, the next run
over that window rewrites the summary in place (and its ``updated_at``); a
run that finds nothing new leaves every record untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from bson import DBRef, ObjectId
from pymongo import UpdateOne

from llmreq_mongo._checks import check_window, client_ref
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import scoped_match
from llmreq_mongo._sharding import shard_key_filter
from llmreq_mongo._time import now_ms, to_utc_ms
from llmreq_mongo._types import ClientRef
from llmreq_mongo.errors import InvalidInput, storage_errors

from .latency import nearest_rank
from .measures import call_sums, tokens

__all__ = ["RollupResult", "aggregate_sessions", "rollup_id"]

_BATCH = 1000


@dataclass(frozen=True)
class RollupResult:
    """What one ``aggregate_sessions`` run did.

    Attributes:
        created: rollup records written for the first time.
        updated: existing ones rewritten because their window gained requests.
        unchanged: existing ones already up to date.
    """

    created: int
    updated: int
    unchanged: int

    @property
    def sessions(self) -> int:
        """How many (client, session) pairs the window holds."""
        return self.created + self.updated + self.unchanged


def _iso(value: dt.datetime) -> str:
    return to_utc_ms(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rollup_id(
    client_id: ObjectId, session_key: str, since: dt.datetime, until: dt.datetime
) -> ObjectId:
    """The ``_id`` of the rollup of one (client, session, window).

    Its four timestamp bytes are the window's start (so ids sort by window),
    the other eight come from a SHA-256 of the whole key.
    """
    seconds = min(max(int(since.timestamp()), 0), 2**32 - 1)
    key = f"{client_id}\x00{session_key}\x00{_iso(since)}\x00{_iso(until)}"
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return ObjectId(seconds.to_bytes(4, "big") + digest[:8])


def _pipeline(
    since: dt.datetime, until: dt.datetime, client_id: ObjectId | None
) -> list[dict[str, Any]]:
    messages = {"$cond": [{"$isArray": "$request.messages"}, {"$size": "$request.messages"}, 0]}
    # Objects compare field by field: the smallest {t, i} is the first request
    # in (created_at, _id) order, without sorting the window.
    position = {"t": "$created_at", "i": "$_id"}
    return [
        *scoped_match(
            client_id=client_id, since=since, until=until, extra={"session_key": {"$ne": None}}
        ),
        {
            "$group": {
                "_id": {"c": "$llm_client_id", "s": "$session_key"},
                "count": {"$sum": 1},
                "messages": {"$sum": messages},
                "first": {"$min": position},
                "last": {"$max": position},
                **call_sums(),
                "latencies": {"$push": "$response.latency_ms"},
            }
        },
    ]


def _summary(row: dict[str, Any], since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    # A row without the response sums (built by hand, as the routing tests do)
    # reads as calls that had no response.
    latencies = sorted(
        float(v)
        for v in row.get("latencies") or ()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    return {
        "window": {"since": _iso(since), "until": _iso(until)},
        "count": int(row["count"]),
        "first_at": _iso(row["first"]["t"]),
        "last_at": _iso(row["last"]["t"]),
        "messages": int(row["messages"]),
        "first_id": str(row["first"]["i"]),
        "last_id": str(row["last"]["i"]),
        "responses": len(latencies),
        "input_tokens": tokens(row, "input_tokens"),
        "output_tokens": tokens(row, "output_tokens"),
        "errors": int(row.get("errors") or 0),
        "latency_p50_ms": nearest_rank(latencies, 50),
        "latency_max_ms": latencies[-1] if latencies else None,
    }


Write = tuple[dict[str, Any], dict[str, Any], bool]  # filter, update, upsert


def _writes(
    row: dict[str, Any], since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> tuple[Write, Write]:
    """Two writes per rollup: refresh it if its summary changed; create it if missing.

    Whichever order the server applies them in, the record ends up holding
    ``summary``; the first counts as modified only when the summary changed,
    the second as upserted only when the record was missing.
    """
    client_id: ObjectId = row["_id"]["c"]
    session_key: str = row["_id"]["s"]
    summary = _summary(row, since, until)
    record_id = rollup_id(client_id, session_key, since, until)
    refresh: Write = (
        {**shard_key_filter(client_id, session_key, record_id), "request": {"$ne": summary}},
        {"$set": {"request": summary, "updated_at": now}},
        False,
    )
    create: Write = (
        # The full shard key: an upsert on a sharded collection needs it.
        shard_key_filter(client_id, session_key, record_id),
        {
            "$setOnInsert": {
                "created_at": now,
                "updated_at": now,
                "llm_client": DBRef(LLMClient.get_collection_name(), client_id),
                "llm_client_id": client_id,
                "request": summary,
                "session_key": session_key,
                "is_aggregation": True,
            }
        },
        True,
    )
    return refresh, create


async def aggregate_sessions(
    *,
    since: dt.datetime,
    until: dt.datetime,
    llm_client: ClientRef | None = None,
) -> RollupResult:
    """Write one ``is_aggregation=True`` record per (client, session) for ``[since, until)``.

    Each summarises the raw requests of that session created in the window:
    their count, first and last ``created_at``, the total length of their
    ``messages`` lists (where the payload has one), the first and last
    ``_id``, and what came back: how many had a response, their input and
    output token sums (None when none was reported), how many failed, and
    the median and largest latency (see the module docstring). Requests
    without a session key are not rolled up. Idempotent: a second run over
    the same window creates nothing; if requests arrived in the window
    meanwhile, it brings the summaries up to date.

    Example::

        day = datetime(2026, 3, 2, tzinfo=timezone.utc)
        result = await aggregate_sessions(since=day, until=day + timedelta(days=1))
        print(result.created, result.updated, result.unchanged)

    Args:
        since: the window's first instant (aware).
        until: the instant after its end (aware).
        llm_client: only this client (an ``LLMClient``, ``ObjectId`` or hex id).

    Raises:
        InvalidInput: a missing or naive bound, ``since >= until``, a bad client.
        StorageError: the server failed; records already written stay, and a
            new run completes the window.
    """
    start, end = check_window(since, until)
    if start is None or end is None:
        raise InvalidInput("aggregate_sessions needs both since and until (aware datetimes)")
    client_id = client_ref(llm_client, model=LLMClient)
    coll = LLMClientRequest.get_pymongo_collection()
    with storage_errors("read the requests to roll up"):
        cursor = await coll.aggregate(_pipeline(start, end, client_id))
        rows: list[dict[str, Any]] = await cursor.to_list(None)
    now = now_ms()
    created = updated = 0
    with storage_errors("write session rollups"):
        for offset in range(0, len(rows), _BATCH):
            ops = [
                UpdateOne(query, update, upsert=upsert)
                for row in rows[offset : offset + _BATCH]
                for query, update, upsert in _writes(row, start, end, now)
            ]
            result = await coll.bulk_write(ops, ordered=True)
            created += result.upserted_count
            updated += result.modified_count
    return RollupResult(created=created, updated=updated, unchanged=len(rows) - created - updated)
