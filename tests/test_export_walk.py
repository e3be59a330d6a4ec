"""The export's walk through the history: bounded ``created_at`` windows, in order.

Each case compares the walk with one query over the same filter sorted the
same way (what ``llmreq export`` sent before), on the real server. A small
``target`` makes a few hundred records span many windows, so window edges
fall between ties, gaps and clusters.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from llmreq_mongo import Handle, LLMClient, LLMClientRequest
from llmreq_mongo._cli._walk import in_time_order, one_window
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo.pytest_plugin import TestServer

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)


async def put(client: LLMClient, times: list[dt.datetime], session: str = "s") -> None:
    docs = []
    for when in times:
        checked = validate_request(client, {"q": 1}, session, False, client_model=LLMClient)
        docs.append(request_document(checked, record_id=ObjectId(), now=when))
    if docs:
        await LLMClientRequest.get_pymongo_collection().insert_many(docs)


def ids(rows: list[dict[str, Any]]) -> list[ObjectId]:
    return [r["_id"] for r in rows]


async def walked(
    query: Mapping[str, Any],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    target: int = 7,
    coll: Any = None,
) -> list[dict[str, Any]]:
    coll = coll if coll is not None else LLMClientRequest.get_pymongo_collection()
    walk = in_time_order(coll, query, since=since, until=until, now=NOW, target=target)
    return [row async for row in walk]


async def at_once(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    coll = LLMClientRequest.get_pymongo_collection()
    return [row async for row in one_window(coll, query)]


def spread() -> list[dt.datetime]:
    """Clusters, ties, gaps of years, the last second, and the future."""
    rng = random.Random(5)
    times = [NOW - dt.timedelta(minutes=rng.uniform(0, 60 * 24 * 30)) for _ in range(150)]
    times += [NOW - dt.timedelta(days=3)] * 25  # one millisecond, 25 records
    times += [NOW - dt.timedelta(days=400, seconds=s) for s in range(30)]
    times += [dt.datetime(1980, 5, 1, tzinfo=UTC), dt.datetime(1980, 5, 1, 0, 0, 1, tzinfo=UTC)]
    times += [NOW - dt.timedelta(milliseconds=ms) for ms in range(0, 900, 60)]
    times += [NOW + dt.timedelta(days=2), NOW + dt.timedelta(days=2)]
    return [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in times]


async def test_the_walk_gives_every_record_once_in_created_at_then_id_order(
    client: LLMClient,
) -> None:
    await put(client, spread())
    rows = await walked({})
    assert ids(rows) == ids(await at_once({}))
    assert len(set(ids(rows))) == len(rows) == 224
    assert [(r["created_at"], r["_id"]) for r in rows] == sorted(
        (r["created_at"], r["_id"]) for r in rows
    )


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (NOW - dt.timedelta(days=10), None),
        (None, NOW - dt.timedelta(days=3)),  # the 25 tied records are at the bound: excluded
        (NOW - dt.timedelta(days=3), NOW - dt.timedelta(hours=1, microseconds=1500)),
        (dt.datetime(1970, 1, 1, tzinfo=UTC), dt.datetime(1990, 1, 1, tzinfo=UTC)),
        (NOW + dt.timedelta(days=1), None),  # only the future
        (NOW + dt.timedelta(days=5), None),  # nothing
    ],
)
async def test_since_and_until_bound_the_walk_as_they_bound_one_query(
    client: LLMClient, since: dt.datetime | None, until: dt.datetime | None
) -> None:
    await put(client, spread())
    bounds: dict[str, dt.datetime] = {}
    if since:
        bounds["$gte"] = since
    if until:
        bounds["$lt"] = until
    expected = await at_once({"created_at": bounds})
    assert ids(await walked({}, since=since, until=until)) == ids(expected)


async def test_a_client_filter_is_kept_in_every_window(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other-bot")
    await put(client, spread())
    await put(other, spread()[::3])
    query = {"llm_client_id": ObjectId(other.id)}
    rows = await walked(query)
    assert ids(rows) == ids(await at_once(query))
    assert {r["llm_client_id"] for r in rows} == {ObjectId(other.id)}


@pytest.mark.parametrize(
    "times",
    [
        [],
        [NOW - dt.timedelta(milliseconds=5)],  # only within the last second
        [dt.datetime(12, 3, 4, tzinfo=UTC), NOW - dt.timedelta(days=1)],  # before every step
        [dt.datetime(9999, 12, 31, tzinfo=UTC)],  # only far in the future
    ],
    ids=["empty", "last second", "year 12", "year 9999"],
)
async def test_the_edges_of_time(client: LLMClient, times: list[dt.datetime]) -> None:
    await put(client, times)
    rows = await walked({})
    assert ids(rows) == ids(await at_once({}))
    assert len(rows) == len(times)


class Reads(monitoring.CommandListener):
    """What the walk's reads asked and got.

    ``bounds``: the ``created_at`` bounds of each window read (a find without a
    limit), as sent. ``sizes``: how many documents each find (with its
    getMores) answered.
    """

    def __init__(self) -> None:
        self.bounds: list[dict[str, dt.datetime]] = []
        self.sizes: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and "limit" not in event.command:
            self.bounds.append(event.command["filter"].get("created_at", {}))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor")
        if event.command_name == "find" and cursor is not None:
            self.sizes.append(len(cursor["firstBatch"]))
        elif event.command_name == "getMore" and cursor is not None:
            self.sizes[-1] += len(cursor["nextBatch"])

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_every_query_of_the_walk_reads_a_bounded_window(
    client: LLMClient, llmreq_engine: TestServer, llmreq_db: Handle
) -> None:
    # 600 records evenly over 60 days: one query would answer all 600.
    await put(client, [NOW - dt.timedelta(hours=2.4 * i) for i in range(600)])
    reads = Reads()
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        llmreq_engine.uri, tz_aware=True, event_listeners=[reads]
    )
    try:
        coll = watched[llmreq_db.database.name]["llm_client_requests"]
        rows = await walked({}, target=20, coll=coll)
    finally:
        await watched.close()
    assert len(rows) == 600
    # The step of the oldest record (55 to 61 days back here) is read in 16
    # windows; the others aim at 20 records and never grow more than 4 times.
    assert max(reads.sizes) <= 4 * 20
    assert len(reads.sizes) > 600 / 80


async def test_stopping_early_closes_the_walk(client: LLMClient) -> None:
    await put(client, spread())
    walk = in_time_order(
        LLMClientRequest.get_pymongo_collection(), {}, since=None, until=None, now=NOW, target=7
    )
    assert isinstance(walk, AsyncGenerator)
    first = [await anext(walk) for _ in range(3)]
    await walk.aclose()
    assert len(first) == 3
    assert len(await walked({})) == 224  # the store is still read normally


def window_of(when: dt.datetime, bounds: list[dict[str, dt.datetime]]) -> int:
    """The index of the window ``when`` falls in."""
    for index, bound in enumerate(bounds):
        if ("$gte" not in bound or bound["$gte"] <= when) and (
            "$lt" not in bound or when < bound["$lt"]
        ):
            return index
    raise AssertionError(f"{when} is in no window")


async def test_the_next_window_is_read_while_the_caller_works_through_this_one(
    client: LLMClient, llmreq_engine: TestServer, llmreq_db: Handle
) -> None:
    await put(client, [NOW - dt.timedelta(hours=2.4 * i) for i in range(300)])
    reads = Reads()
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        llmreq_engine.uri, tz_aware=True, event_listeners=[reads]
    )
    try:
        coll = watched[llmreq_db.database.name]["llm_client_requests"]
        walk = in_time_order(coll, {}, since=None, until=None, now=NOW, target=20)
        # A caller that never waits on anything of its own, as the export's
        # formatting loop: how many window reads were sent when each row reached it.
        seen = [(row["created_at"], len(reads.bounds)) async for row in walk]
    finally:
        await watched.close()
    assert len(seen) == 300
    last = len(reads.bounds) - 1
    assert last > 10
    for when, sent in seen:
        window = window_of(when, reads.bounds)
        # The read of the window after this row's was sent before the row was
        # handed on: the server works while the caller does.
        assert sent >= min(window + 2, last + 1), (when, window, sent)
