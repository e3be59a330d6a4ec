"""``session_page``: every session by last activity, keyset-paged over a fixed snapshot.

The history API and the history browser list sessions through it; it is the
same report as ``session_summaries``, paged instead of capped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId

from llmreq_mongo._checks import check_count, check_window, client_ref
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import (
    MAX_PAGE_SIZE,
    Page,
    decode_cursor,
    encode_cursor,
    fingerprint,
    scoped_match,
)
from llmreq_mongo._time import now_ms, to_utc_ms
from llmreq_mongo._types import ClientRef
from llmreq_mongo.errors import InvalidInput, storage_errors

from .analytics import SessionSummary

__all__ = ["session_page"]

# The labels of the values a cursor carries: the snapshot instant the first
# page fixed, then the last session's sort key.
_SESSION_KEYS = (("until", 1), ("last_at", -1), ("session_key", 1), ("llm_client_id", 1))


def _session_page_plan(
    *, client_id: ObjectId | None, since: Any, until: Any, size: int, after: Any
) -> tuple[bytes, dt.datetime, list[dict[str, Any]]]:
    """Check the arguments and build the pipeline (no I/O): fingerprint, snapshot, pipeline."""
    start, end = check_window(since, until)
    print_ = fingerprint(
        LLMClientRequest.get_collection_name(),
        {"sessions": True, "client": client_id, "since": start, "until": end},
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
    if start is not None and start >= snapshot:
        raise InvalidInput("since is after the moment this listing started; start over")
    pipeline: list[dict[str, Any]] = [
        *scoped_match(
            client_id=client_id, since=start, until=snapshot, extra={"session_key": {"$ne": None}}
        ),
        {
            "$group": {
                "_id": {"s": "$session_key", "c": "$llm_client_id"},
                "requests": {"$sum": 1},
                "first_at": {"$min": "$created_at"},
                "last_at": {"$max": "$created_at"},
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
    size: int = 50,
    after: str | None = None,
) -> Page[SessionSummary]:
    """One page of sessions (raw requests only), the most recently active first.

    The first page fixes the end of the window (``until``, or now) and every
    later page carries it in its cursor, so requests that arrive while paging
    neither move a session between pages nor change its counts. Sessions with
    the same last activity are ordered by key, then client.

    Example::

        page = await analytics.session_page(size=20)
        while page.next_cursor:
            page = await analytics.session_page(size=20, after=page.next_cursor)

    Args:
        llm_client: only this client's sessions.
        since: only requests at or after this aware datetime.
        until: only requests before it (default: now, fixed by the first page).
        size: sessions per page, 1 to 1,000.
        after: the ``next_cursor`` of the previous page.

    Raises:
        InvalidInput: a bad argument; ``InvalidCursor`` for a cursor that was
            altered or comes from another listing.
    """
    check_count("size", size, maximum=MAX_PAGE_SIZE)
    client_id = client_ref(llm_client, model=LLMClient)
    print_, snapshot, pipeline = _session_page_plan(
        client_id=client_id, since=since, until=until, size=size, after=after
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
            llm_client_id=row["_id"]["c"],
            requests=int(row["requests"]),
            first_at=to_utc_ms(row["first_at"]),
            last_at=to_utc_ms(row["last_at"]),
        )
        for row in rows
    ]
    return Page(items, next_cursor)
