"""``aggregate_sessions``: session rollups, idempotence, late arrivals, and bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import (
    InvalidInput,
    LLMClient,
    LLMClientRequest,
    RollupResult,
    aggregate_sessions,
    analytics,
)
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._reports.rollups import rollup_id
from llmreq_mongo._time import now_ms
from response_history import CALLS, answer, failed, seed, token_sum
from response_history import DAY as HISTORY_DAY
from response_history import put as put_call

UTC = dt.timezone.utc
SINCE = dt.datetime(2026, 3, 2, tzinfo=UTC)
UNTIL = SINCE + dt.timedelta(days=1)


def at(minutes: float) -> dt.datetime:
    return SINCE + dt.timedelta(minutes=minutes)


async def put(
    client: LLMClient, session: str | None, when: dt.datetime, payload: Any = None
) -> ObjectId:
    checked = validate_request(
        client, payload if payload is not None else {"q": 1}, session, False, client_model=LLMClient
    )
    doc = request_document(checked, record_id=ObjectId(), now=when)
    await LLMClientRequest.get_pymongo_collection().insert_one(doc)
    return doc["_id"]


def chat(n: int) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": str(i)} for i in range(n)]}


async def rollups() -> list[LLMClientRequest]:
    return await LLMClientRequest.objects.filter(is_aggregation=True).order_by("id").to_list()


async def test_one_rollup_per_client_and_session(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="sales-bot")
    first = await put(client, "s1", at(10), chat(3))
    # Two requests in one millisecond: the _id decides which one is last.
    tied = sorted([await put(client, "s1", at(20), chat(2)) for _ in range(2)])
    await put(client, "s1", at(15), {"messages": "not a list"})
    await put(client, "s1", at(16), ["a", "payload", "that", "is", "a", "list"])
    await put(other, "s1", at(30), chat(1))
    await put(client, "s1", at(-1), chat(9))  # before the window
    await put(client, "s1", UNTIL, chat(9))  # at until: outside [since, until)
    await put(client, None, at(40), chat(9))  # no session: not rolled up

    result = await aggregate_sessions(since=SINCE, until=UNTIL)
    assert result == RollupResult(created=2, updated=0, unchanged=0)
    assert result.sessions == 2

    records = {r.llm_client_id: r for r in await rollups()}
    mine = records[client.id]
    assert mine.session_key == "s1" and mine.is_aggregation
    assert mine.id == rollup_id(ObjectId(client.id), "s1", SINCE, UNTIL)
    assert mine.llm_client.ref.id == client.id
    assert mine.request == {
        "window": {"since": "2026-03-02T00:00:00.000Z", "until": "2026-03-03T00:00:00.000Z"},
        "count": 5,
        "first_at": "2026-03-02T00:10:00.000Z",
        "last_at": "2026-03-02T00:20:00.000Z",
        "messages": 3 + 2 + 2,
        "first_id": str(first),
        "last_id": str(tied[-1]),
        # No call has a response: nothing reported, nothing failed, no latency.
        "responses": 0,
        "input_tokens": None,
        "output_tokens": None,
        "errors": 0,
        "latency_p50_ms": None,
        "latency_max_ms": None,
    }
    assert records[other.id].request["count"] == 1
    assert records[other.id].request["messages"] == 1


async def test_a_second_run_creates_nothing(client: LLMClient) -> None:
    await put(client, "s1", at(1), chat(1))
    await put(client, "s2", at(2), chat(1))
    assert await aggregate_sessions(since=SINCE, until=UNTIL) == RollupResult(2, 0, 0)
    before = [(r.id, r.request, r.updated_at) for r in await rollups()]
    assert await aggregate_sessions(since=SINCE, until=UNTIL) == RollupResult(0, 0, 2)
    assert [(r.id, r.request, r.updated_at) for r in await rollups()] == before


async def test_late_requests_refresh_the_rollup_in_place(client: LLMClient) -> None:
    await put(client, "s1", at(1), chat(1))
    await aggregate_sessions(since=SINCE, until=UNTIL)
    [old] = await rollups()
    late = await put(client, "s1", at(90), chat(4))
    await put(client, "s2", at(91), chat(1))
    assert await aggregate_sessions(since=SINCE, until=UNTIL) == RollupResult(1, 1, 0)
    [new, _] = sorted(await rollups(), key=lambda r: r.session_key or "")
    assert new.id == old.id and new.created_at == old.created_at
    assert new.updated_at >= old.updated_at
    assert (new.request["count"], new.request["messages"]) == (2, 5)
    assert new.request["last_id"] == str(late)


async def test_windows_are_separate_and_scoped_by_client(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="sales-bot")
    await put(client, "s1", at(10))
    await put(client, "s1", at(60 * 30))  # the next day
    await put(other, "s1", at(10))
    assert await aggregate_sessions(since=SINCE, until=UNTIL, llm_client=client) == RollupResult(
        1, 0, 0
    )
    next_day = {"since": UNTIL, "until": UNTIL + dt.timedelta(days=1)}
    assert await aggregate_sessions(**next_day, llm_client=str(client.id)) == RollupResult(1, 0, 0)
    assert await aggregate_sessions(since=SINCE, until=UNTIL) == RollupResult(1, 0, 1)
    assert len({r.id for r in await rollups()}) == 3


async def test_rollups_never_count_as_requests(client: LLMClient) -> None:
    now = now_ms()
    window: dict[str, Any] = {
        "since": now - dt.timedelta(hours=1),
        "until": now + dt.timedelta(hours=1),
    }
    await put(client, "s1", now - dt.timedelta(minutes=5), chat(2))
    await put(client, "s1", now - dt.timedelta(minutes=4), chat(2))
    await aggregate_sessions(**window)
    # The rollup record itself was created inside the window: a second run
    # and every report must ignore it.
    assert await aggregate_sessions(**window) == RollupResult(0, 0, 1)
    [summary] = await analytics.session_summaries(**window)
    assert summary.requests == 2
    assert sum(b.count or 0 for b in await analytics.request_counts(**window)) == 2
    [usage] = await analytics.client_usage(**window)
    assert usage.requests == 2
    history = LLMClientRequest.objects.for_session("s1")
    assert await history.count() == 3
    raw = LLMClientRequest.objects.for_session("s1", include_aggregations=False)
    assert [r.is_aggregation for r in await raw.to_list()] == [False, False]


async def test_concurrent_runs_write_each_rollup_once(client: LLMClient) -> None:
    for i in range(20):
        await put(client, f"s{i}", at(i))
    results = await asyncio.gather(
        *(aggregate_sessions(since=SINCE, until=UNTIL) for _ in range(3))
    )
    assert sum(r.created for r in results) == 20
    assert all(r.sessions == 20 for r in results)
    assert await LLMClientRequest.objects.filter(is_aggregation=True).count() == 20


async def test_an_empty_window_writes_nothing(llmreq_db: object) -> None:
    assert await aggregate_sessions(since=SINCE, until=UNTIL) == RollupResult(0, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"since": None, "until": UNTIL}, "needs both"),
        ({"since": SINCE, "until": None}, "needs both"),
        ({"since": dt.datetime(2026, 3, 2), "until": UNTIL}, "naive"),
        ({"since": SINCE, "until": dt.datetime(2026, 3, 3)}, "naive"),
        ({"since": UNTIL, "until": SINCE}, "must be before"),
        ({"since": SINCE, "until": SINCE}, "must be before"),
        ({"since": "2026-03-02", "until": UNTIL}, "timezone-aware datetime"),
        ({"since": SINCE, "until": UNTIL, "llm_client": "nope"}, "hex"),
        ({"since": SINCE, "until": UNTIL, "llm_client": 7}, "must be an LLMClient"),
    ],
)
async def test_bad_input_is_refused(
    llmreq_engine: object, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        await aggregate_sessions(**kwargs)


async def test_rollups_carry_tokens_errors_and_latency(client: LLMClient) -> None:
    sales = await LLMClient.objects.create(name="sales-bot")
    await seed(client, sales)
    day: dict[str, Any] = {"since": HISTORY_DAY, "until": HISTORY_DAY + dt.timedelta(days=1)}
    await aggregate_sessions(**day)
    names = {client.id: "support", sales.id: "sales"}
    # The seed's own rollup-like record (no window) is not one of this run's.
    records = [r for r in await rollups() if "window" in r.request]
    assert {r.session_key for r in records} == {"s1", "s2", "s3"}  # s4 is the next day
    for record in records:
        calls = [
            c
            for c in CALLS
            if c.client == names[record.llm_client_id]
            and c.session == record.session_key
            and c.hours < 24
        ]
        latencies = sorted(c.response["latency_ms"] for c in calls if c.response)
        summary = record.request
        assert summary["count"] == len(calls)
        assert summary["responses"] == len(latencies)
        assert summary["input_tokens"] == token_sum(calls, "input_tokens")
        assert summary["output_tokens"] == token_sum(calls, "output_tokens")
        assert summary["errors"] == sum(failed(c) for c in calls)
        assert summary["latency_p50_ms"] == latencies[math.ceil(len(latencies) / 2) - 1]
        assert summary["latency_max_ms"] == max(latencies)
    s2 = next(r for r in records if r.session_key == "s2")
    assert (s2.request["input_tokens"], s2.request["errors"]) == (None, 1)
    # A late call with a response refreshes the figures in place.
    await put_call(client, "s2", HISTORY_DAY + dt.timedelta(hours=20), answer("m", 9000.0))
    assert await aggregate_sessions(**day) == RollupResult(0, 1, 2)
    s2 = next(r for r in await rollups() if r.session_key == "s2" and "window" in r.request)
    assert (s2.request["responses"], s2.request["latency_max_ms"]) == (2, 9000.0)
