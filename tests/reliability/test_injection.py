"""Injection: operator dicts and other non-scalars where a scalar belongs, and regex input.

Every public entry point that takes a session key, a client name or id, a
cursor, a lookup value or a time bound is handed values an attacker could put
in a JSON body (``{"$ne": ""}``, ``{"$gt": ""}``, ``{"$regex": ".*"}``,
``{"$where": ...}``, lists, bytes). Each must raise ``InvalidInput`` (a
subclass, such as ``InvalidLookup`` or ``InvalidCursor``, is fine) and send
nothing at all to the server: a command listener on the client counts every
command, and the count must not move.

Then the values that *are* accepted as literals are checked to behave as
literals: ``__contains``/``__startswith`` never run their argument as a regular
expression, and an operator-looking payload value only matches a payload that
holds exactly that value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from llmreq_mongo import (
    InvalidCursor,
    InvalidInput,
    LLMClient,
    LLMClientRequest,
    Recorder,
    aggregate_sessions,
    analytics,
    init,
)
from llmreq_mongo.pytest_plugin import TestServer

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 2, tzinfo=UTC)

HOSTILE: list[Any] = [
    {"$ne": ""},
    {"$gt": ""},
    {"$regex": ".*"},
    {"$where": "sleep(1000) || true"},
    {"$in": ["a", "b"]},
    ["a", "b"],
    b"abc",
    {"a", "b"},
]
HOSTILE_IDS = ["ne", "gt", "regex", "where", "in", "list", "bytes", "set"]


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends (heartbeats are not commands)."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Watched:
    """The test database, its client, and the commands sent through it."""

    def __init__(self, commands: list[str], client: LLMClient) -> None:
        self.commands = commands
        self.client = client


@pytest.fixture(scope="module")
async def watched(llmreq_engine: TestServer) -> AsyncIterator[Watched]:
    """One database, reached through a client whose every command is counted."""
    counter = CommandCounter()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        llmreq_engine.uri, tz_aware=True, event_listeners=[counter]
    )
    name = f"llmreq_inject_{uuid.uuid4().hex[:12]}"
    await init(mongo, database=name)
    client = await LLMClient.objects.create(name="target")
    for key in ["a", ".*", "^a", "(", "[", "\\", "a" * 40 + "!", "plain"]:
        await LLMClientRequest.objects.create(
            llm_client=client, request={"model": "gpt-4o"}, session_key=key
        )
    await LLMClientRequest.objects.create(
        llm_client=client, request={"model": {"$ne": None}}, session_key="literal-operator"
    )
    try:
        yield Watched(counter.commands, client)
    finally:
        await mongo.drop_database(name)
        await mongo.close()


def _sessions(client: LLMClient) -> Any:
    return LLMClientRequest.objects.for_session("a", llm_client=client)


# Each entry point, as a function of the hostile value and the saved client.
ENTRY_POINTS: dict[str, Callable[[Any, LLMClient], Awaitable[Any]]] = {
    # the manager and QuerySet
    "filter(session_key=)": lambda v, c: LLMClientRequest.objects.filter(session_key=v).to_list(),
    "exclude(session_key=)": lambda v, c: LLMClientRequest.objects.exclude(session_key=v).count(),
    "get(session_key=)": lambda v, c: LLMClientRequest.objects.get(session_key=v),
    "filter(session_key__in=[v])": lambda v, c: LLMClientRequest.objects.filter(
        session_key__in=[v]
    ).count(),
    "filter(session_key__startswith=)": lambda v, c: LLMClientRequest.objects.filter(
        session_key__startswith=v
    ).count(),
    "filter(session_key__contains=)": lambda v, c: LLMClientRequest.objects.filter(
        session_key__contains=v
    ).count(),
    "filter(session_key__ne=)": lambda v, c: LLMClientRequest.objects.filter(
        session_key__ne=v
    ).count(),
    "get(pk=)": lambda v, c: LLMClientRequest.objects.get(pk=v),
    "filter(id__in=[v])": lambda v, c: LLMClientRequest.objects.filter(id__in=[v]).count(),
    "filter(llm_client=)": lambda v, c: LLMClientRequest.objects.filter(llm_client=v).count(),
    "filter(llm_client_id=)": lambda v, c: LLMClientRequest.objects.filter(llm_client_id=v).count(),
    "filter(created_at__gte=)": lambda v, c: LLMClientRequest.objects.filter(
        created_at__gte=v
    ).count(),
    "filter(created_at__lt=)": lambda v, c: LLMClientRequest.objects.filter(
        created_at__lt=v
    ).count(),
    "filter(is_aggregation=)": lambda v, c: LLMClientRequest.objects.filter(
        is_aggregation=v
    ).count(),
    "LLMClient.get(name=)": lambda v, c: LLMClient.objects.get(name=v),
    "LLMClient.filter(name__startswith=)": lambda v, c: LLMClient.objects.filter(
        name__startswith=v
    ).count(),
    "LLMClient.get_or_create(name=)": lambda v, c: LLMClient.objects.get_or_create(name=v),
    "create(session_key=)": lambda v, c: LLMClientRequest.objects.create(
        llm_client=c, request={}, session_key=v
    ),
    "create(llm_client=)": lambda v, c: LLMClientRequest.objects.create(
        llm_client=v, request={}, session_key="s"
    ),
    "create(is_aggregation=)": lambda v, c: LLMClientRequest.objects.create(
        llm_client=c, request={}, is_aggregation=v
    ),
    "LLMClient.create(name=)": lambda v, c: LLMClient.objects.create(name=v),
    "update(session_key=)": lambda v, c: LLMClientRequest.objects.filter(session_key="a").update(
        session_key=v
    ),
    "update(llm_client=)": lambda v, c: LLMClientRequest.objects.filter(session_key="a").update(
        llm_client=v
    ),
    "LLMClient.update(name=)": lambda v, c: LLMClient.objects.filter(name="target").update(name=v),
    # sessions and pages
    "for_session(v)": lambda v, c: LLMClientRequest.objects.for_session(v).to_list(),
    "for_session(llm_client=)": lambda v, c: LLMClientRequest.objects.for_session(
        "a", llm_client=v
    ).to_list(),
    "page(after=)": lambda v, c: _sessions(c).page(size=10, after=v),
    "page(size=)": lambda v, c: _sessions(c).page(size=v),
    # analytics
    "session_summaries(llm_client=)": lambda v, c: analytics.session_summaries(llm_client=v),
    "session_summaries(since=)": lambda v, c: analytics.session_summaries(since=v),
    "session_summaries(until=)": lambda v, c: analytics.session_summaries(until=v),
    "session_summaries(limit=)": lambda v, c: analytics.session_summaries(limit=v),
    "session_summaries(group_by=)": lambda v, c: analytics.session_summaries(group_by=v),
    "request_counts(session_key=)": lambda v, c: analytics.request_counts(session_key=v),
    "request_counts(llm_client=)": lambda v, c: analytics.request_counts(llm_client=v),
    "request_counts(since=)": lambda v, c: analytics.request_counts(since=v),
    "request_counts(by=)": lambda v, c: analytics.request_counts(by=v),
    "request_counts(tz=)": lambda v, c: analytics.request_counts(tz=v),
    "request_counts(group_by=)": lambda v, c: analytics.request_counts(group_by=v),
    "client_usage(since=)": lambda v, c: analytics.client_usage(since=v),
    "client_usage(until=)": lambda v, c: analytics.client_usage(until=v),
    "top_sessions(n=)": lambda v, c: analytics.top_sessions(n=v),
    "top_sessions(llm_client=)": lambda v, c: analytics.top_sessions(llm_client=v),
    "aggregate_sessions(since=)": lambda v, c: aggregate_sessions(since=v, until=NOW),
    "aggregate_sessions(until=)": lambda v, c: aggregate_sessions(
        since=NOW - dt.timedelta(days=1), until=v
    ),
    "aggregate_sessions(llm_client=)": lambda v, c: aggregate_sessions(
        since=NOW - dt.timedelta(days=1), until=NOW, llm_client=v
    ),
}


# Bytes given as a client name on a write have a test of their own, below.
CASES = [
    pytest.param(entry, value, id=f"{entry}-{vid}")
    for entry in ENTRY_POINTS
    for value, vid in zip(HOSTILE, HOSTILE_IDS, strict=True)
    if not (vid == "bytes" and entry in ("LLMClient.create(name=)", "LLMClient.update(name=)"))
]


@pytest.mark.parametrize(("entry", "value"), CASES)
async def test_entry_point_refuses_non_scalar_before_io(
    watched: Watched, entry: str, value: Any
) -> None:
    before = len(watched.commands)
    with pytest.raises(InvalidInput):
        await ENTRY_POINTS[entry](value, watched.client)
    sent = watched.commands[before:]
    assert sent == [], f"{entry} sent {sent} before refusing {value!r}"


@pytest.mark.parametrize(
    "entry",
    [
        lambda: LLMClient.objects.create(name=b"bytes-name"),
        lambda: LLMClient.objects.filter(name="rename-me").update(name=b"bytes-name"),
        lambda: LLMClient.objects.create(name="bytes-description", description=b"x"),
    ],
    ids=["create", "update", "description"],
)
async def test_client_fields_refuse_bytes_as_lookups_do(
    watched: Watched, entry: Callable[[], Awaitable[Any]]
) -> None:
    """``LLMClient.objects.get(name=b"x")`` is refused; writing ``name=b"x"`` must be too.

    The write paths validate with pydantic in lax mode, which turns bytes into
    a string, so the same value is refused by a lookup and accepted by a write.
    """
    await LLMClient.objects.create(name="rename-me")
    before = len(watched.commands)
    try:
        with pytest.raises(InvalidInput):
            await entry()
        assert watched.commands[before:] == []
    finally:
        await LLMClient.objects.filter(
            name__in=["rename-me", "bytes-name", "bytes-description"]
        ).delete()


@pytest.mark.parametrize("value", HOSTILE, ids=HOSTILE_IDS)
async def test_recorder_refuses_non_scalar_session_key(watched: Watched, value: Any) -> None:
    async with Recorder(flush_interval=0.01) as recorder:
        with pytest.raises(InvalidInput):
            recorder.record(watched.client, {"q": 1}, session_key=value)
        with pytest.raises(InvalidInput):
            recorder.record(value, {"q": 1}, session_key="s")
        with pytest.raises(InvalidInput):
            await recorder.arecord(watched.client, {"q": 1}, session_key=value)
        assert recorder.stats.queued == 0


HOSTILE_CURSORS = [
    '{"$gt": ""}',
    "eyIkZ3QiOiAiIn0",  # base64url of {"$gt": ""}
    "AQ" + "A" * 40,
    "",
    "not a cursor!",
    "A" * 10_000,
    "\U0001f600",
]


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
async def test_forged_cursors_are_refused(watched: Watched, cursor: str) -> None:
    before = len(watched.commands)
    with pytest.raises(InvalidCursor):
        await _sessions(watched.client).page(size=2, after=cursor)
    assert watched.commands[before:] == []


async def test_cursor_from_another_query_is_refused(watched: Watched) -> None:
    page = await LLMClientRequest.objects.all().order_by("session_key").page(size=2)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursor):
        await LLMClientRequest.objects.filter(session_key="a").page(size=2, after=page.next_cursor)
    with pytest.raises(InvalidCursor):
        await (
            LLMClientRequest.objects.all()
            .order_by("-session_key")
            .page(size=2, after=page.next_cursor)
        )


REGEX_INPUT = {
    ".*": [".*"],
    "^": ["^a"],
    "(": ["("],
    "[": ["["],
    "\\": ["\\"],
    "a": ["a", "^a", "a" * 40 + "!", "plain", "literal-operator"],
    "(a+)+$": [],  # catastrophic backtracking, were it ever run as a pattern
    "a" * 40: ["a" * 40 + "!"],
}


@pytest.mark.parametrize("text", list(REGEX_INPUT), ids=lambda t: repr(t[:12]))
async def test_contains_is_literal(watched: Watched, text: str) -> None:
    found = await LLMClientRequest.objects.filter(session_key__contains=text).to_list()
    assert sorted(r.session_key or "" for r in found) == sorted(REGEX_INPUT[text])


@pytest.mark.parametrize(
    ("text", "expected"),
    [(".*", [".*"]), ("^", ["^a"]), ("(", ["("]), ("\\", ["\\"]), ("a", ["a", "a" * 40 + "!"])],
    ids=["dotstar", "caret", "paren", "backslash", "a"],
)
async def test_startswith_is_literal(watched: Watched, text: str, expected: list[str]) -> None:
    found = await LLMClientRequest.objects.filter(session_key__startswith=text).to_list()
    assert sorted(r.session_key or "" for r in found) == sorted(expected)


async def test_catastrophic_pattern_in_client_names_is_literal(watched: Watched) -> None:
    assert await LLMClient.objects.filter(name__contains="(a+)+$").count() == 0
    assert await LLMClient.objects.filter(name__startswith="t.*").count() == 0
    assert await LLMClient.objects.filter(name__startswith="tar").count() == 1


async def test_operator_shaped_payload_value_is_a_literal(watched: Watched) -> None:
    """``request__model={"$ne": None}`` matches only a payload holding exactly that."""
    found = await LLMClientRequest.objects.filter(request__model={"$ne": None}).to_list()
    assert [r.session_key for r in found] == ["literal-operator"]
    assert found[0].request == {"model": {"$ne": None}}
    regex = await LLMClientRequest.objects.filter(request__model={"$regex": ".*"}).count()
    assert regex == 0


async def test_operator_shaped_field_names_are_refused(watched: Watched) -> None:
    for lookups in (
        {"$where": "1"},
        {"session_key__regex": ".*"},
        {"session_key__$ne": ""},
        {"request__$where": "1"},
    ):
        before = len(watched.commands)
        try:
            count = await LLMClientRequest.objects.filter(**lookups).count()
        except InvalidInput:
            count = None
        assert watched.commands[before:] in ([], ["aggregate"])
        # Refused, or (inside the payload) an escaped literal path matching nothing.
        assert count in (None, 0), lookups
    with pytest.raises(InvalidInput):
        LLMClientRequest.objects.order_by("$natural")


async def test_literal_id_strings_still_work(watched: Watched) -> None:
    """The checks do not refuse what they should accept: hex ids and aware datetimes."""
    first = await LLMClientRequest.objects.filter(session_key="a").first()
    assert first is not None
    assert (await LLMClientRequest.objects.get(pk=str(first.id))).id == first.id
    assert await LLMClientRequest.objects.filter(llm_client=str(watched.client.id)).count() == 9
    assert await LLMClientRequest.objects.filter(llm_client_id=ObjectId()).count() == 0
    since = dt.datetime.now(UTC) - dt.timedelta(days=1)
    assert await LLMClientRequest.objects.filter(created_at__gte=since).count() == 9
