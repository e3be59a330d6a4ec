"""session_page: every session once, by last activity, over a fixed snapshot."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId

from llmreq_mongo import InvalidCursor, InvalidInput, LLMClient, LLMClientRequest
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._reports.session_pages import session_page

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _seed(client: LLMClient, rows: list[tuple[str | None, dt.datetime]]) -> None:
    docs = [
        request_document(
            validate_request(client, {"n": i}, key, False, client_model=LLMClient),
            record_id=ObjectId(),
            now=at,
        )
        for i, (key, at) in enumerate(rows)
    ]
    await LLMClientRequest.get_pymongo_collection().insert_many(docs)


async def test_pages_cover_every_session_once(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other")
    rows = [(f"s{i:02d}", T0 + dt.timedelta(minutes=i // 3)) for i in range(25)]
    await _seed(client, [*rows, ("s00", T0 - dt.timedelta(days=1)), (None, T0)])
    await _seed(other, [("s00", T0 + dt.timedelta(hours=1))])
    until = T0 + dt.timedelta(days=1)
    seen = []
    page = await session_page(until=until, size=7)
    while True:
        seen += [(s.session_key, s.llm_client_id) for s in page.items]
        if page.next_cursor is None:
            break
        page = await session_page(until=until, size=7, after=page.next_cursor)
    assert len(seen) == len(set(seen)) == 26
    assert seen[0] == ("s00", ObjectId(other.id))
    first = await session_page(until=until, size=1, llm_client=client)
    assert first.items[0].session_key == "s24"
    s00 = await session_page(key_prefix="s00", until=until)
    assert sorted(s.requests for s in s00.items) == [1, 2]


async def test_prefix_is_text_and_cursors_are_checked(client: LLMClient) -> None:
    await _seed(client, [("a.b", T0), ("axb", T0), ("a", T0)])
    until = T0 + dt.timedelta(hours=1)
    found = await session_page(key_prefix="a.", until=until)
    assert [s.session_key for s in found.items] == ["a.b"]
    page = await session_page(until=until, size=1)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await session_page(until=until, size=1, after=page.next_cursor, key_prefix="a")
    with pytest.raises(InvalidInput):
        await session_page(key_prefix=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await session_page(size=0)


async def test_a_window_before_the_snapshot_stays_put_while_paging(client: LLMClient) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    await _seed(client, [(f"w{i}", now - dt.timedelta(hours=i)) for i in range(1, 6)])
    await _seed(client, [("old", now - dt.timedelta(days=9))])
    week = dt.timedelta(days=7)
    page = await session_page(within=week, size=2)
    seen = [s.session_key for s in page.items]
    while page.next_cursor:
        page = await session_page(within=week, size=2, after=page.next_cursor)
        seen += [s.session_key for s in page.items]
    assert seen == ["w1", "w2", "w3", "w4", "w5"]
    first = await session_page(within=week, size=2)
    with pytest.raises(InvalidCursor):
        await session_page(within=dt.timedelta(days=1), size=2, after=first.next_cursor)
    with pytest.raises(InvalidInput, match="within"):
        await session_page(within=week, since=now - week)
    with pytest.raises(InvalidInput, match="within"):
        await session_page(within=dt.timedelta(0))


async def test_each_session_carries_its_tokens_and_errors(client: LLMClient) -> None:
    def answered(i: int, o: int | None) -> dict[str, object]:
        return {"status": 200, "usage": {"input_tokens": i, "output_tokens": o}, "latency_ms": 5}

    calls = [
        ("a", answered(100, 10)),
        ("a", answered(50, None)),  # output not reported: the sum covers the call that did
        ("a", {"status": 429, "error": "slow", "latency_ms": 1}),
        ("a", None),  # a request recorded alone: not an error, no tokens
        ("b", {"status": 200, "latency_ms": 3}),  # no usage reported at all
        ("b", {"error": "ConnectError", "latency_ms": 2}),
        ("c", None),
    ]
    for n, (key, response) in enumerate(calls):
        await LLMClientRequest.objects.create(
            llm_client=client,
            request={"n": n},
            session_key=key,
            response=response,
            created_at=T0 + dt.timedelta(minutes=n),
        )
    page = await session_page(until=T0 + dt.timedelta(hours=1))
    found = {s.session_key: (s.input_tokens, s.output_tokens, s.errors) for s in page.items}
    assert found == {"a": (150, 10, 1), "b": (None, None, 1), "c": (None, None, 0)}
