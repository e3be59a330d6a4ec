"""Sessions by last activity, one keyset page at a time, over a fixed snapshot.

:func:`session_summaries` returns at most a limit; a browser pages through
every session instead. Each page continues after the last session of the
previous one by its sort key (last activity, then key, then client), never by
skipping, so a deep page costs what the first does. The first page fixes the
listing's end (``until``, or now) and every cursor carries it, so requests
arriving while someone pages neither move sessions between pages nor change
their counts.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bson import ObjectId

from llmreq_mongo._checks import check_count, check_session_key, check_window, client_ref
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import (
    MAX_PAGE_SIZE,
    Page,
    decode_cursor,
    encode_cursor,
    fingerprint,
    scoped_match,
)
from llmreq_mongo._reports.analytics import SessionSummary
from llmreq_mongo._reports.measures import call_sums, tokens
from llmreq_mongo._time import now_ms, to_utc_ms
from llmreq_mongo._types import ClientRef
from llmreq_mongo.errors import InvalidInput, storage_errors

__all__ = ["session_page"]

# The order of the listing, and the labels of the values a cursor carries: the
# snapshot instant the first page fixed, then the last session's sort key.
_SESSION_KEYS = (("until", 1), ("last_at", -1), ("session_key", 1), ("llm_client_id", 1))


def _session_page_plan(
    *,
    client_id: ObjectId | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    within: dt.timedelta | None,
    prefix: str | None,
    size: int,
    after: Any,
) -> tuple[bytes, dt.datetime, list[dict[str, Any]]]:
    """The listing's fingerprint, snapshot and pipeline, from checked arguments (no I/O)."""
    print_ = fingerprint(
        LLMClientRequest.get_collection_name(),
        {
            "sessions": True,
            "client": client_id,
            "since": start,
            "until": end,
            "within": None if within is None else within.total_seconds(),
            "prefix": prefix,
        },
        _SESSION_KEYS,
    )
    keyset: dict[str, Any] | None = None
    if after is None:
        snapshot = end if end is not None else now_ms()
    else:
        snapshot, last_at, key, cid = decode_cursor(after, print_, _SESSION_KEYS)
        keyset = {
            "$or": [
                {"last_at": {"$lt": last_at}},
                {"last_at": {"$eq": last_at}, "_id.s": {"$gt": key}},
                {"last_at": {"$eq": last_at}, "_id.s": {"$eq": key}, "_id.c": {"$gt": cid}},
            ]
        }
    if within is not None:
        start = snapshot - within
    if start is not None and start >= snapshot:
        raise InvalidInput("since is after the moment this listing started; start over")
    # The prefix is escaped, so it is matched as text whatever characters it holds.
    keys: dict[str, Any] = {"$ne": None} if prefix is None else {"$regex": "^" + re.escape(prefix)}
    pipeline: list[dict[str, Any]] = [
        *scoped_match(
            client_id=client_id, since=start, until=snapshot, extra={"session_key": keys}
        ),
        {
            "$group": {
                "_id": {"s": "$session_key", "c": "$llm_client_id"},
                "requests": {"$sum": 1},
                "first_at": {"$min": "$created_at"},
                "last_at": {"$max": "$created_at"},
                **call_sums(),
            }
        },
    ]
    if keyset is not None:
        pipeline.append({"$match": keyset})
    pipeline += [{"$sort": {"last_at": -1, "_id.s": 1, "_id.c": 1}}, {"$limit": size + 1}]
    return print_, snapshot, pipeline


async def session_page(
    *,
    llm_client: ClientRef | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    within: dt.timedelta | None = None,
    key_prefix: str | None = None,
    size: int = 50,
    after: str | None = None,
) -> Page[SessionSummary]:
    """One page of sessions, most recently active first (raw requests only).

    Args:
        llm_client: only this client's sessions.
        since: count requests created at or after this instant.
        until: count requests created before this instant (default: now, as of
            the first page).
        within: count requests of this span before the listing's end (the
            last 7 days, say); the span is fixed with the end on the first
            page, so later pages cover the same window. Not with ``since``.
        key_prefix: only sessions whose key starts with this text (matched
            literally, never as a pattern).
        size: sessions per page, 1 to 1,000.
        after: the previous page's ``next_cursor``; None for the first page.

    Raises:
        InvalidInput: a naive datetime, ``since >= until``, a bad client, a
            prefix that is not a string of at most 255 characters, or
            ``size`` out of range.
        InvalidCursor: ``after`` was altered or belongs to another listing.
    """
    start, end = check_window(since, until)
    if within is not None and (
        start is not None or not isinstance(within, dt.timedelta) or within <= dt.timedelta(0)
    ):
        raise InvalidInput(
            f"within must be a positive timedelta, and not given with since; got {within!r}"
        )
    client_id = client_ref(llm_client, model=LLMClient)
    prefix = check_session_key(key_prefix, nullable=True) or None
    size = check_count("size", size, maximum=MAX_PAGE_SIZE)
    print_, snapshot, pipeline = _session_page_plan(
        client_id=client_id,
        start=start,
        end=end,
        within=within,
        prefix=prefix,
        size=size,
        after=after,
    )
    with storage_errors("list sessions"):
        cursor = await LLMClientRequest.get_pymongo_collection().aggregate(pipeline)
        rows: list[dict[str, Any]] = await cursor.to_list(size + 1)
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = encode_cursor(
            print_,
            _SESSION_KEYS,
            [snapshot, to_utc_ms(last["last_at"]), last["_id"]["s"], last["_id"]["c"]],
        )
    items = [
        SessionSummary(
            session_key=row["_id"]["s"],
            llm_client_id=ObjectId(row["_id"]["c"]),
            requests=int(row["requests"]),
            first_at=to_utc_ms(row["first_at"]),
            last_at=to_utc_ms(row["last_at"]),
            input_tokens=tokens(row, "input_tokens"),
            output_tokens=tokens(row, "output_tokens"),
            errors=int(row["errors"]),
        )
        for row in rows
    ]
    return Page(items, next_cursor)
