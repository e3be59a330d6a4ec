"""Session history: ``for_session``, keyset pages and their cursors, ``iterator``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from llmreq_mongo import (
    Handle,
    InvalidCursor,
    InvalidInput,
    LLMClient,
    LLMClientRequest,
    Page,
    QuerySet,
    init,
)
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._queries import decode_cursor, encode_cursor, fingerprint, with_tiebreak
from llmreq_mongo.pytest_plugin import TestServer

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def seed(
    client: LLMClient,
    session: str | None,
    offsets_ms: list[int],
    *,
    payload: dict[str, object] | None = None,
    is_aggregation: bool = False,
) -> list[ObjectId]:
    """Insert requests created at T0 + each offset; returns their ids in insert order."""
    docs = []
    for i, offset in enumerate(offsets_ms):
        checked = validate_request(
            client, payload or {"n": i}, session, is_aggregation, client_model=LLMClient
        )
        docs.append(
            request_document(
                checked, record_id=ObjectId(), now=T0 + dt.timedelta(milliseconds=offset)
            )
        )
    await LLMClientRequest.get_pymongo_collection().insert_many(docs)
    return [doc["_id"] for doc in docs]


async def all_pages(qs: QuerySet[LLMClientRequest], size: int) -> list[list[ObjectId | None]]:
    pages: list[list[ObjectId | None]] = []
    after = None
    while True:
        page = await qs.page(size=size, after=after)
        pages.append([r.id for r in page.items])
        if page.next_cursor is None:
            return pages
        after = page.next_cursor


def ids(rows: list[LLMClientRequest]) -> list[ObjectId | None]:
    return [r.id for r in rows]


# -- for_session ---------------------------------------------------------------


async def test_for_session_is_chronological_with_id_tiebreak(client: LLMClient) -> None:
    # Three records share one millisecond: _id decides among them.
    tied = await seed(client, "s1", [5, 5, 5])
    early = await seed(client, "s1", [1])
    late = await seed(client, "s1", [9])
    await seed(client, "other", [0, 2, 7])
    qs = LLMClientRequest.objects.for_session("s1")
    assert qs.sort == [("created_at", 1), ("_id", 1)]
    assert ids(await qs.to_list()) == [*early, *sorted(tied), *late]
    newest_first = qs.order_by("-created_at")
    assert newest_first.sort == [("created_at", -1), ("_id", -1)]
    assert ids(await newest_first.to_list()) == [*late, *sorted(tied, reverse=True), *early]


async def test_for_session_scopes_by_client_and_drops_aggregations(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other-bot")
    mine = await seed(client, "s1", [1, 2])
    theirs = await seed(other, "s1", [3])
    rollup = await seed(client, "s1", [4], is_aggregation=True)
    everything = LLMClientRequest.objects.for_session("s1")
    assert ids(await everything.to_list()) == [*mine, *theirs, *rollup]
    for ref in (client, client.id, str(client.id)):
        scoped = LLMClientRequest.objects.for_session("s1", llm_client=ref)
        assert ids(await scoped.to_list()) == [*mine, *rollup]
    raw = LLMClientRequest.objects.for_session("s1", llm_client=client, include_aggregations=False)
    assert ids(await raw.to_list()) == mine
    assert await raw.count() == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"session_key": 123}, "session_key must be a string"),
        ({"session_key": None}, "session_key must be a string"),
        ({"session_key": {"$ne": ""}}, "never a query"),
        ({"session_key": "x" * 256}, "at most 255"),
        ({"session_key": "s", "llm_client": "not-hex"}, "24-character hex"),
        ({"session_key": "s", "llm_client": 42}, "must be an LLMClient"),
        ({"session_key": "s", "include_aggregations": "no"}, "True or False"),
    ],
)
def test_for_session_refuses_bad_input(kwargs: dict[str, object], match: str) -> None:
    # No database fixture: the refusal happens before any I/O.
    with pytest.raises(InvalidInput, match=match):
        LLMClientRequest.objects.for_session(**kwargs)  # type: ignore[arg-type]


async def test_for_session_refuses_an_unsaved_client(llmreq_db: object) -> None:
    with pytest.raises(InvalidInput, match="unsaved"):
        LLMClientRequest.objects.for_session("s", llm_client=LLMClient(name="unsaved"))


def test_only_request_documents_have_sessions() -> None:
    # for_session lives on the request manager, not on every manager.
    assert not hasattr(LLMClient.objects, "for_session")
    assert hasattr(LLMClientRequest.objects, "for_session")


# -- pages ---------------------------------------------------------------------


async def test_pages_cover_everything_once_in_order(client: LLMClient) -> None:
    await seed(client, "s1", [0, 1, 1, 1, 2, 3, 3, 4, 5, 6, 7])
    qs = LLMClientRequest.objects.for_session("s1")
    expected = ids(await qs.to_list())
    for size in (1, 3, 4, 11, 50):
        pages = await all_pages(qs, size)
        assert [i for page in pages for i in page] == expected
        assert all(len(page) == size for page in pages[:-1])
        assert 1 <= len(pages[-1]) <= size  # never an empty trailing page
    reverse = qs.order_by("-created_at")
    assert [i for p in await all_pages(reverse, 4) for i in p] == expected[::-1]


async def test_page_returns_documents_and_an_opaque_url_safe_cursor(client: LLMClient) -> None:
    await seed(client, "s1", [0, 1, 2])
    page = await LLMClientRequest.objects.for_session("s1").page(size=2)
    assert isinstance(page, Page)
    assert all(isinstance(r, LLMClientRequest) for r in page.items)
    assert [r.request for r in page.items] == [{"n": 0}, {"n": 1}]
    assert page.next_cursor is not None
    assert set(page.next_cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    last = await LLMClientRequest.objects.for_session("s1").page(size=2, after=page.next_cursor)
    assert [r.request for r in last.items] == [{"n": 2}]
    assert last.next_cursor is None


async def test_empty_query_gives_one_empty_page(llmreq_db: object) -> None:
    page = await LLMClientRequest.objects.for_session("nobody").page()
    assert page.items == [] and page.next_cursor is None


async def test_new_records_between_pages_are_neither_repeated_nor_missed(
    client: LLMClient,
) -> None:
    await seed(client, "live", list(range(0, 100, 10)))
    qs = LLMClientRequest.objects.for_session("live")
    seen: list[ObjectId | None] = []
    page = await qs.page(size=3)
    added = 0
    while True:
        seen.extend(r.id for r in page.items)
        # New records land at and after the cursor's millisecond, between calls;
        # the first one shares the last item's created_at exactly.
        last = page.items[-1].created_at
        await seed(client, "live", [int((last - T0).total_seconds() * 1000), 500 + added])
        added += 2
        if page.next_cursor is None or added > 12:
            break
        page = await qs.page(size=3, after=page.next_cursor)
    while page.next_cursor is not None:
        page = await qs.page(size=3, after=page.next_cursor)
        seen.extend(r.id for r in page.items)
    everything = ids(await qs.to_list())
    assert len(seen) == len(set(seen))
    assert seen == everything  # all of them, once, in order, the new ones included


async def test_newest_first_pages_do_not_repeat_when_records_arrive(client: LLMClient) -> None:
    original = await seed(client, "live", list(range(10)))
    qs = LLMClientRequest.objects.for_session("live").order_by("-created_at")
    seen: list[ObjectId | None] = []
    page = await qs.page(size=4)
    while True:
        seen.extend(r.id for r in page.items)
        await seed(client, "live", [1000 + len(seen)])  # newer than everything
        if page.next_cursor is None:
            break
        page = await qs.page(size=4, after=page.next_cursor)
    assert seen == original[::-1]


async def test_any_queryset_pages_unordered_by_id(client: LLMClient) -> None:
    await seed(client, "a", [3, 1, 2])
    await seed(client, None, [0, 5])
    qs = LLMClientRequest.objects.filter(llm_client=client)
    pages = await all_pages(qs, 2)
    everything = sorted(r.id for r in await qs.to_list() if r.id is not None)
    assert [i for p in pages for i in p] == everything


@pytest.mark.parametrize("order", ["session_key", "-session_key"])
async def test_pages_over_a_nullable_field_with_ties(client: LLMClient, order: str) -> None:
    await seed(client, None, [0, 1, 2])
    await seed(client, "b", [3, 4])
    await seed(client, "a", [5, 6, 7])
    qs = LLMClientRequest.objects.filter(llm_client=client).order_by(order)
    assert qs.sort == [("session_key", -1 if order.startswith("-") else 1)]
    expected = ids(await qs.order_by(order, "-id" if order.startswith("-") else "id").to_list())
    for size in (1, 2, 3):
        assert [i for p in await all_pages(qs, size) for i in p] == expected


async def test_pages_over_a_payload_path(client: LLMClient) -> None:
    for n in (5, 1, 3, 3, 2):
        await seed(client, "s", [n], payload={"n": n})
    qs = LLMClientRequest.objects.filter(session_key="s").order_by("-request__n")
    pages = await all_pages(qs, 2)
    values = [(await LLMClientRequest.objects.get(pk=i)).request["n"] for p in pages for i in p]
    assert values == [5, 3, 3, 2, 1]


async def test_page_refuses_to_continue_after_a_payload_object(client: LLMClient) -> None:
    await seed(client, "s", [0, 1], payload={"n": {"nested": 1}})
    qs = LLMClientRequest.objects.filter(session_key="s").order_by("request__n")
    with pytest.raises(InvalidInput, match="holds a dict"):
        await qs.page(size=1)


@pytest.mark.parametrize("size", [0, -1, 1001, True, "5", 2.0, None])
async def test_page_size_is_checked(client: LLMClient, size: object) -> None:
    with pytest.raises(InvalidInput, match="size"):
        await LLMClientRequest.objects.for_session("s").page(size=size)  # type: ignore[arg-type]


async def test_page_refuses_a_limited_query(client: LLMClient) -> None:
    with pytest.raises(InvalidInput, match="drop limit"):
        await LLMClientRequest.objects.for_session("s").limit(5).page(size=2)


# -- cursors -------------------------------------------------------------------


async def _cursor(client: LLMClient) -> str:
    await seed(client, "s1", [0, 1, 2, 3])
    page = await LLMClientRequest.objects.for_session("s1").page(size=2)
    assert page.next_cursor is not None
    return page.next_cursor


def _flip(token: str, index: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    char = token[index]
    return token[:index] + alphabet[(alphabet.index(char) + 1) % 64] + token[index + 1 :]


async def test_cursor_tampering_is_refused(client: LLMClient) -> None:
    token = await _cursor(client)
    qs = LLMClientRequest.objects.for_session("s1")
    bad = {
        "flipped near the start": _flip(token, 3),
        "flipped in the values": _flip(token, len(token) - 5),
        "truncated": token[:-4],
        "one char short": token[:-1],
        "extended": token + "AAAA",
        "padded": token + "=",
        "garbage": "not a cursor!",
        "empty": "",
        "base64 of junk": base64.urlsafe_b64encode(b"\x01" + b"x" * 40).decode().rstrip("="),
        "huge": "A" * 10_000,
    }
    for why, value in bad.items():
        with pytest.raises(InvalidCursor):
            await qs.page(size=2, after=value)
        assert why  # names the case in a failure's traceback


def test_non_canonical_base64_is_refused() -> None:
    # The unused low bits of the last character: Python's decoder ignores
    # them, so a changed bit decodes to the same bytes. It must still fail.
    sort = [("session_key", 1), ("_id", 1)]
    print_ = b"q" * 32
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tried = 0
    for key in ("", "a", "ab"):
        token = encode_cursor(print_, sort, [key, ObjectId("0" * 24)])
        assert decode_cursor(token, print_, sort) == [key, ObjectId("0" * 24)]
        if len(token) % 4 == 0:
            continue
        twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]
        padding = "=" * (-len(token) % 4)
        assert base64.urlsafe_b64decode(twin + padding) == base64.urlsafe_b64decode(token + padding)
        with pytest.raises(InvalidCursor, match="canonical"):
            decode_cursor(twin, print_, sort)
        tried += 1
    assert tried == 2  # two of three body lengths leave spare bits


@pytest.mark.parametrize("after", [123, b"abc", ["x"], {"$gt": ""}])
async def test_cursor_of_the_wrong_type_is_refused(client: LLMClient, after: object) -> None:
    with pytest.raises(InvalidCursor, match="a cursor is a string"):
        await LLMClientRequest.objects.for_session("s1").page(size=2, after=after)  # type: ignore[arg-type]


async def test_cursor_from_another_query_or_order_is_refused(client: LLMClient) -> None:
    token = await _cursor(client)
    await seed(client, "s2", [0, 1, 2])
    others = [
        LLMClientRequest.objects.for_session("s2"),
        LLMClientRequest.objects.for_session("s1", llm_client=client),
        LLMClientRequest.objects.for_session("s1", include_aggregations=False),
        LLMClientRequest.objects.for_session("s1").order_by("-created_at"),
        LLMClientRequest.objects.filter(session_key="s1"),
    ]
    for qs in others:
        with pytest.raises(InvalidCursor, match="another query"):
            await qs.page(size=2, after=token)
    # The same query built again accepts it: a cursor survives across requests.
    page = await LLMClientRequest.objects.for_session("s1").page(size=2, after=token)
    assert len(page.items) == 2


def _forge(body: object, qs: QuerySet[LLMClientRequest]) -> str:
    """A cursor with a valid check over ``body``: what only a determined forger makes."""
    sort = with_tiebreak(qs.sort)
    print_ = fingerprint(LLMClientRequest.get_collection_name(), qs.query, sort)
    raw = json.dumps(body, separators=(",", ":")).encode()
    check = hashlib.sha256(print_ + b"\x00" + raw).digest()[:16]
    return base64.urlsafe_b64encode(b"\x01" + check + raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "body",
    [
        [["d", 0]],  # too few values
        [["d", 0], ["o", "0" * 24], ["n"]],  # too many
        [["d", "2026-01-01"], ["o", "0" * 24]],  # a datetime must be milliseconds
        [["x", 1], ["o", "0" * 24]],  # unknown tag
        [["s", {"$gt": ""}], ["o", "0" * 24]],  # an operator where a string belongs
        [["d", 0], ["o", "ZZ" * 12]],  # not an ObjectId
        [["d", 10**30], ["o", "0" * 24]],  # out of range
        [["i", True], ["o", "0" * 24]],  # a bool is not an int
        {"d": 0},
    ],
)
async def test_forged_values_must_still_be_typed_scalars(client: LLMClient, body: object) -> None:
    qs = LLMClientRequest.objects.for_session("s1")
    with pytest.raises(InvalidCursor, match="do not decode"):
        await qs.page(size=2, after=_forge(body, qs))


async def test_a_forged_well_typed_cursor_only_moves_the_start(client: LLMClient) -> None:
    ids_ = await seed(client, "s1", [0, 10, 20])
    qs = LLMClientRequest.objects.for_session("s1")
    after = _forge([["d", int((T0.timestamp() + 0.010) * 1000)], ["o", str(ids_[1])]], qs)
    page = await qs.page(size=5, after=after)
    assert ids(page.items) == [ids_[2]]


# -- iterator ------------------------------------------------------------------


async def test_iterator_streams_everything_in_order(client: LLMClient) -> None:
    await seed(client, "s1", list(range(25)))
    qs = LLMClientRequest.objects.for_session("s1")
    streamed = [r.id async for r in qs.iterator(batch_size=4)]
    assert streamed == ids(await qs.to_list())
    first_three = []
    async for r in qs.order_by("-created_at").iterator(batch_size=2):
        first_three.append(r.request["n"])
        if len(first_three) == 3:
            break
    assert first_three == [24, 23, 22]


class FindCommands(monitoring.CommandListener):
    """Records the find and getMore commands a client sends."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "getMore"):
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_iterator_fetches_in_driver_batches(
    llmreq_engine: TestServer, llmreq_db: Handle
) -> None:
    listener = FindCommands()
    watched: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        llmreq_engine.uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        await init(watched, database=llmreq_db.database.name)
        client = await LLMClient.objects.create(name="batcher")
        await seed(client, "s1", list(range(25)))
        listener.commands.clear()
        seen = [
            r.id async for r in LLMClientRequest.objects.for_session("s1").iterator(batch_size=4)
        ]
        assert len(seen) == 25
        find, *more = listener.commands
        assert find["batchSize"] == 4
        # 25 documents in batches of 4: the first batch plus six getMores.
        assert len(more) == 6 and all(c["batchSize"] == 4 for c in more)
    finally:
        await watched.close()


@pytest.mark.parametrize("batch_size", [0, -5, 100_001, True, "10"])
async def test_iterator_batch_size_is_checked(client: LLMClient, batch_size: object) -> None:
    qs = LLMClientRequest.objects.for_session("s1")
    with pytest.raises(InvalidInput, match="batch_size"):  # on the call, before iterating
        qs.iterator(batch_size=batch_size)  # type: ignore[arg-type]
