"""Injection through the web integrations and the command line.

What arrives over HTTP or on a command line is text or JSON. Where a session
key, a client name, a cursor or a time bound is expected, an operator-shaped
value (``{"$ne": ""}``, ``[$gt]=`` query syntax) must either be refused with a
4xx answer / a non-zero exit, or be treated as the literal text it is, which
matches nothing. It must never widen what is read or written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from pymongo import MongoClient
from typer.testing import CliRunner

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, Recorder, init
from llmreq_mongo._cli import app as cli_app
from llmreq_mongo.integrations.asgi import LLMRequestLogger
from llmreq_mongo.integrations.fastapi import history_router
from llmreq_mongo.pytest_plugin import TestServer

OPERATOR = '{"$ne": ""}'


async def _echo(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app that drains the body and answers 200."""
    while True:
        message = await receive()
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def test_middleware_ignores_operator_session_keys_from_the_body(llmreq_db: Handle) -> None:
    client = await LLMClient.objects.create(name="web")
    async with Recorder(flush_interval=0.01) as recorder:
        logger = LLMRequestLogger(
            _echo, recorder=recorder, llm_client=client, paths=["/v1/chat/completions"]
        )
        transport = httpx.ASGITransport(app=logger)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            bodies = [
                {"session_key": {"$ne": ""}, "model": "a"},
                {"session_key": ["x", "y"], "model": "b"},
                {"session_key": {"$gt": ""}, "$where": "1", "a.b": {"$in": [1]}},
            ]
            for body in bodies:
                answer = await http.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200
            # Query-string syntax that some frameworks turn into dicts stays text here.
            answer = await http.post("/v1/chat/completions?session_key[$ne]=x", json={"model": "c"})
            assert answer.status_code == 200
        await recorder.flush()
    stored = await LLMClientRequest.objects.order_by("created_at").to_list()
    assert [r.session_key for r in stored] == [None, None, None, None]
    assert [r.request for r in stored] == [*bodies, {"model": "c"}]
    assert logger.stats.session_keys_ignored >= 3
    assert logger.stats.recorded == 4


@pytest.fixture
async def history_app(llmreq_db: Handle) -> AsyncIterator[httpx.AsyncClient]:
    client = await LLMClient.objects.create(name="api-bot")
    for key in ("s1", "s2", "s3"):
        await LLMClientRequest.objects.create(
            llm_client=client, request={"model": "m"}, session_key=key
        )
    app = FastAPI()
    app.include_router(history_router(public=True), prefix="/h")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.mark.parametrize(
    ("url", "statuses"),
    [
        ("/h/sessions/{op}/requests", {200}),
        ("/h/sessions?client={op}", {400, 404, 422}),
        ("/h/sessions/s1/requests?client={op}", {400, 404, 422}),
        ("/h/sessions?since={op}", {400, 422}),
        ("/h/sessions?until[$gt]=2020-01-01T00:00:00Z&since={op}", {400, 422}),
        ("/h/sessions/s1/requests?after={op}", {400}),
        ("/h/sessions?after=eyIkZ3QiOiAiIn0", {400}),
        ("/h/sessions/s1/requests?size={op}", {400, 422}),
        ("/h/usage?session_key={op}", {200}),
        ("/h/usage?tz={op}", {400, 422}),
        ("/h/usage?by={op}", {400, 422}),
        ("/h/usage?client={op}", {400, 404, 422}),
        ("/h/clients?after={op}", {400}),
    ],
)
async def test_history_router_refuses_or_treats_as_literal(
    history_app: httpx.AsyncClient, url: str, statuses: set[int]
) -> None:
    answer = await history_app.get(url.format(op=OPERATOR))
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    if answer.status_code == 200:
        body = answer.json()
        # A literal key matches nothing: no session's requests, no counts.
        items = body.get("items", body.get("buckets", []))
        assert all(not item.get("count") for item in items) if "buckets" in body else not items


@pytest.fixture(scope="module")
def cli_store(llmreq_engine: TestServer) -> Any:
    """A database with two sessions, for the command line (sync: the CLI runs its own loop)."""
    name = f"llmreq_cli_inject_{uuid.uuid4().hex[:12]}"

    async def seed() -> None:
        handle = await init(llmreq_engine.uri, database=name)
        client = await LLMClient.objects.create(name="cli-bot")
        for key in ("k1", "k2"):
            await LLMClientRequest.objects.create(
                llm_client=client, request={"q": 1}, session_key=key
            )
        await handle.close()

    asyncio.run(seed())
    yield llmreq_engine.uri, name
    with MongoClient[dict[str, Any]](llmreq_engine.uri) as sync:
        sync.drop_database(name)


@pytest.mark.parametrize(
    "args",
    [
        ["sessions", "--client", OPERATOR],
        ["show", OPERATOR],
        ["show", "k1", "--client", OPERATOR],
        ["sessions", "--since", OPERATOR],
        ["stats", "--client", OPERATOR],
        ["stats", "--tz", OPERATOR],
    ],
    ids=[
        "sessions-client",
        "show-key",
        "show-client",
        "sessions-since",
        "stats-client",
        "stats-tz",
    ],
)
def test_cli_refuses_operator_arguments(cli_store: Any, args: list[str]) -> None:
    uri, database = cli_store
    result = CliRunner().invoke(cli_app, ["--uri", uri, "--database", database, *args])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("session", "expected"), [(OPERATOR, []), ("k1", ["k1"])])
def test_cli_export_takes_the_session_literally(
    cli_store: Any, session: str, expected: list[str]
) -> None:
    uri, database = cli_store
    result = CliRunner().invoke(
        cli_app, ["--uri", uri, "--database", database, "export", "--session", session, "-o", "-"]
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    exported = [json.loads(line) for line in lines if '"session_key"' in line]
    assert [row["session_key"] for row in exported] == expected, result.output
    assert result.exit_code == 0


# -- hostile values: every answer is a 2xx or a 4xx with a reason, never a 500 ----------------

_UTC = dt.timezone.utc
_LAST_MS = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=_UTC)
_FIRST = dt.datetime(1, 1, 1, tzinfo=_UTC)
_NOW = dt.datetime(2026, 3, 1, tzinfo=_UTC)

#: Values for any query parameter: out-of-range instants, control and invalid characters,
#: numbers no parameter takes, operator syntax.
HOSTILE_VALUES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "a\x00b",
    "\x00",
    "%ED%A0%80",
    "1e400",
    "-1",
    "99999999999999999999",
    "²",
    "UTC\x00",
    "../../etc/passwd",
    OPERATOR,
    " ",
    "",
    "\ufeff",
    "x" * 9000,
]
HOSTILE_PARAMETERS = {
    "/h/clients": ["after", "size"],
    "/h/sessions": ["client", "since", "until", "size", "after"],
    "/h/sessions/s1/requests": ["client", "order", "size", "after"],
    "/h/usage": ["by", "client", "session_key", "since", "until", "tz"],
    "/h/usage/clients": ["since", "until"],
}
HOSTILE_PATH_PARTS = [
    "a\x00b",
    "%ED%A0%80",
    "%FF",
    "..",
    ".",
    "%2E%2E",
    "a/../../etc/passwd",
    "k" * 300,
    OPERATOR,
    "\ufeff",
]


def _crafted_cursors() -> list[tuple[str, dict[str, str]]]:
    """Cursors with a valid check and values of the wrong type or at the calendar's ends.

    The check is an integrity check, not a secret: anyone who reads the code can
    build one, so what a cursor carries is hostile input like any other.
    """
    from llmreq_mongo._queries import encode_cursor, fingerprint
    from llmreq_mongo._reports.session_pages import _SESSION_KEYS

    oid = ObjectId()
    sessions = fingerprint(
        LLMClientRequest.get_collection_name(),
        {"sessions": True, "client": None, "since": None, "until": None},
        _SESSION_KEYS,
    )
    out = [
        ("/h/sessions", {"after": encode_cursor(sessions, _SESSION_KEYS, values)})
        for values in (
            ["not a date", _NOW, "s1", oid],
            [_NOW, 42, "s1", oid],
            [_NOW, _NOW, None, "not an id"],
            [_LAST_MS, _LAST_MS, "s1", oid],
            [_FIRST, _FIRST, "s1", oid],
            [_NOW, {"$gt": ""}, "s1", oid],
        )
        if all(not isinstance(v, dict) for v in values)
    ]
    for order, qs in (
        ("asc", LLMClientRequest.objects.for_session("s1")),
        ("desc", LLMClientRequest.objects.for_session("s1").order_by("-created_at")),
    ):
        sort, print_, _ = qs._page_plan(1, None)
        cases: list[list[Any]] = [[_LAST_MS, oid], [_FIRST, oid], ["text", 7], [None, None]]
        for values in cases:
            cursor = encode_cursor(print_, sort, values)
            out.append(("/h/sessions/s1/requests", {"order": order, "after": cursor}))
    sort, print_, _ = LLMClient.objects.order_by("name")._page_plan(1, None)
    client_cases: list[list[Any]] = [[_LAST_MS, oid], [None, "x"], [1.5, True]]
    for values in client_cases:
        out.append(("/h/clients", {"after": encode_cursor(print_, sort, values)}))
    return out


async def test_no_hostile_query_value_cursor_or_path_part_gives_a_500(
    llmreq_db: Handle,
) -> None:
    client = await LLMClient.objects.create(name="api-bot")
    await LLMClientRequest.objects.create(llm_client=client, request={"m": 1}, session_key="s1")
    app = FastAPI()
    app.include_router(history_router(public=True), prefix="/h")
    attempts: list[tuple[str, dict[str, str]]] = [
        (url, {name: value})
        for url, names in HOSTILE_PARAMETERS.items()
        for name in names
        for value in HOSTILE_VALUES
    ]
    attempts += [
        (f"/h/sessions/{quote(part, safe='%/')}/requests", {}) for part in HOSTILE_PATH_PARTS
    ]
    attempts += [
        (f"/h/sessions/{quote(part, safe='')}/requests", {}) for part in HOSTILE_PATH_PARTS
    ]
    attempts += _crafted_cursors()
    # The server's view: an exception in the app is a 500 answer, not a test crash.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    failures = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for url, params in attempts:
            answer = await http.get(url, params=params)
            if answer.status_code >= 500 or (
                answer.status_code >= 400 and "detail" not in answer.json()
            ):
                failures.append((answer.status_code, url, params))
    assert failures == [], f"{len(failures)} of {len(attempts)}: {failures}"
