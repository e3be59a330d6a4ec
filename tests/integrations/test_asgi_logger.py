"""LLMRequestLogger on a bare ASGI application: what is recorded, what is passed on."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, Recorder
from llmreq_mongo.integrations.asgi import (
    ASGIApp,
    LLMRequestLogger,
    Message,
    Receive,
    RequestLoggerStats,
    Scope,
    Send,
    SessionKeyFinder,
)

HttpFactory = Callable[[ASGIApp], httpx.AsyncClient]
CHAT = "/v1/chat/completions"


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and answers with it, its digest and how many messages carried it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    state = scope.get("state") or {}
    headers = [
        (b"x-messages", str(len(chunks)).encode()),
        (b"x-sha256", hashlib.sha256(body).hexdigest().encode()),
        (b"x-record-id", str(state.get("llmreq_record_id", "")).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stored() -> list[LLMClientRequest]:
    return await LLMClientRequest.objects.order_by("created_at", "id").to_list()


def logger_for(
    recorder: Recorder, client: LLMClient, app: ASGIApp = echo_app, **options: Any
) -> LLMRequestLogger:
    return LLMRequestLogger(app, recorder=recorder, llm_client=client, **options)


# -- what is recorded ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "request_options"),
    [
        ("header", {"headers": {"X-Session-Key": "from-header"}}),
        ("cookie", {"headers": {"Cookie": "theme=dark; session_key=from-cookie; x=1"}}),
        ("body", {}),
        ("query", {"params": {"session_key": "from-query"}}),
    ],
)
async def test_records_the_body_with_the_session_key_from_each_place(
    recorder: Recorder,
    client: LLMClient,
    http: HttpFactory,
    where: str,
    request_options: dict[str, Any],
) -> None:
    payload: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    if where == "body":
        payload["session_key"] = "from-body"
    # The record's id reaches the handler when the record is queued on arrival.
    app = logger_for(recorder, client, capture="request")
    async with http(app) as web:
        response = await web.post(CHAT, json=payload, **request_options)
    assert response.status_code == 200
    await recorder.flush()
    (record,) = await stored()
    assert record.request == payload
    assert record.session_key == f"from-{where}"
    assert record.llm_client_id == client.id
    assert record.is_aggregation is False
    assert response.headers["x-record-id"] == str(record.id)
    assert app.stats.recorded == 1 and app.stats.seen == 1


async def test_the_first_place_in_the_configured_order_wins(
    recorder: Recorder, client: LLMClient, http: HttpFactory
) -> None:
    app = logger_for(
        recorder, client, session_key_from=["query:sid", "body:meta.sid", "header:x-sid"]
    )
    async with http(app) as web:
        await web.post(
            CHAT, json={"meta": {"sid": "b"}}, params={"sid": "q"}, headers={"x-sid": "h"}
        )
        await web.post(CHAT, json={"meta": {"sid": "b"}}, headers={"x-sid": "h"})
        await web.post(CHAT, json={"meta": {"sid": ""}}, headers={"x-sid": "h"})
        await web.post(CHAT, json={"meta": "not an object"})
    await recorder.flush()
    assert [r.session_key for r in await stored()] == ["q", "b", "h", None]


@pytest.mark.parametrize(
    "bad",
    [{"$ne": ""}, ["a", "b"], 12, True, "k" * 256],
    ids=["operator", "list", "int", "bool", "too-long"],
)
async def test_an_unusable_session_key_is_ignored_counted_and_never_used(
    recorder: Recorder, client: LLMClient, http: HttpFactory, bad: Any
) -> None:
    app = logger_for(recorder, client, session_key_from=["body:session_key", "query:session_key"])
    async with http(app) as web:
        await web.post(CHAT, json={"session_key": bad, "q": 1})
        await web.post(CHAT, json={"session_key": bad, "q": 2}, params={"session_key": "fallback"})
    await recorder.flush()
    records = await stored()
    assert [r.session_key for r in records] == [None, "fallback"]
    assert [r.request["session_key"] for r in records] == [bad, bad]  # the payload is kept as sent
    assert app.stats.session_keys_ignored == 2
    assert app.stats.recorded == 2


async def test_only_configured_methods_and_paths_are_recorded(
    recorder: Recorder, client: LLMClient, http: HttpFactory
) -> None:
    app = logger_for(
        recorder,
        client,
        paths=["/v1/chat/completions", re.compile(r"/v1/agents/[a-z]+/run")],
        methods=["post", "PUT"],
    )
    async with http(app) as web:
        await web.post("/v1/chat/completions", json={"n": 1})
        await web.put("/v1/agents/alpha/run", json={"n": 2})
        await web.post(
            "/v1/agents/alpha/run/extra", json={"n": 3}
        )  # a pattern matches the whole path
        await web.post("/v1/agents/Alpha/run", json={"n": 4})
        await web.post("/v1/chat/completions/", json={"n": 5})
        await web.patch("/v1/chat/completions", json={"n": 6})
        await web.get("/v1/chat/completions", params={"n": 7})
    await recorder.flush()
    assert [r.request["n"] for r in await stored()] == [1, 2]
    assert app.stats.seen == 2


# -- what is passed on ---------------------------------------------------------------------


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(
    ("length", "chunk"),
    [(300_000, 7_001), (3_000_000, 65_536)],
    ids=["under-the-limit", "over-the-limit"],
)
async def test_bodies_reach_the_app_byte_identical_in_the_same_messages(
    recorder: Recorder, client: LLMClient, http: HttpFactory, length: int, chunk: int
) -> None:
    text = "é" * (length // 2)  # non-ASCII, so re-encoding would show
    body = json.dumps({"content": text}, ensure_ascii=False).encode()
    app = logger_for(recorder, client)
    async with http(app) as web:
        response = await web.post(
            CHAT, content=_chunks(body, chunk), headers={"content-type": "application/json"}
        )
    assert response.content == body
    assert response.headers["x-sha256"] == hashlib.sha256(body).hexdigest()
    # httpx sends one message per chunk and a final empty one.
    assert int(response.headers["x-messages"]) == -(-len(body) // chunk) + 1
    await recorder.flush()
    records = await stored()
    if len(body) <= app.max_body_bytes:
        assert [r.request["content"] for r in records] == [text]
    else:
        assert records == [] and app.stats.skipped_too_large == 1


@pytest.mark.parametrize("capture", ["request", "response"])
async def test_the_app_receives_the_very_messages_the_server_sent(
    recorder: Recorder, client: LLMClient, capture: str
) -> None:
    sent: list[Message] = [
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"[1, 2]}", "more_body": False},
        {"type": "http.disconnect"},
    ]
    pending = list(sent)

    async def receive() -> Message:
        return pending.pop(0)

    received: list[Message] = []
    sends: list[Send] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        sends.append(send)
        for _ in range(4):
            received.append(await receive())

    async def send(message: Message) -> None:
        raise AssertionError("the app sends nothing")

    logger = logger_for(recorder, client, app=app, capture=capture)
    await logger(_scope("POST", CHAT), receive, send)
    assert received == sent and all(a is b for a, b in zip(received, sent, strict=True))
    if capture == "request":
        assert sends == [send]  # the response side is never wrapped
    await recorder.flush()
    assert [r.request for r in await stored()] == [{"a": [1, 2]}]


async def test_other_requests_pass_straight_through_untouched(
    recorder: Recorder, client: LLMClient
) -> None:
    calls: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    async def receive() -> Message:
        raise AssertionError("the middleware must not read this body")

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    logger = logger_for(recorder, client, app=app)
    scopes = [
        _scope("POST", "/v1/other"),
        _scope("GET", CHAT),
        {"type": "websocket", "path": CHAT, "headers": []},
        {"type": "lifespan"},
    ]
    for scope in scopes:
        await logger(scope, receive, send)
    assert [(s, r, w) for s, r, w in calls] == [(s, receive, send) for s in scopes]
    assert all(call[1] is receive and call[2] is send for call in calls)
    assert logger.stats.seen == 0


async def test_a_streaming_response_streams_through(
    recorder: Recorder, client: LLMClient, http: HttpFactory
) -> None:
    parts = [f'data: {{"delta": {i}}}\n\n'.encode() for i in range(50)]

    async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    app = logger_for(recorder, client, app=streaming_app)
    async with http(app) as web, web.stream("POST", CHAT, json={"stream": True}) as response:
        received = [chunk async for chunk in response.aiter_raw()]
    assert b"".join(received) == b"".join(parts)
    await recorder.flush()
    assert [r.request for r in await stored()] == [{"stream": True}]


# -- what is skipped -------------------------------------------------------------------------


async def test_non_json_and_empty_bodies_are_skipped_counted_and_logged(
    recorder: Recorder, client: LLMClient, http: HttpFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = [
        b"model=gpt-4o&q=hi",
        b"",
        b"   ",
        b"{broken",
        b'{"x": NaN}',
        b"\xff\xfe\x00",
        b"[" * 100_000,
    ]
    app = logger_for(recorder, client)
    with caplog.at_level(logging.WARNING, logger="llmreq_mongo.integrations.asgi"):
        async with http(app) as web:
            for body in bodies:
                response = await web.post(CHAT, content=body)
                assert response.status_code == 200 and response.content == body
    assert app.stats.skipped_not_json == len(bodies)
    assert app.stats.recorded == 0
    assert len(caplog.records) == len(bodies)
    assert all("\n" not in r.getMessage() and CHAT in r.getMessage() for r in caplog.records)
    await recorder.flush()
    assert await stored() == []


async def test_a_path_is_logged_as_the_client_wrote_it_never_decoded(
    recorder: Recorder, client: LLMClient, http: HttpFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The server decodes the path: a client's %1B%5B2J arrives as an escape sequence,
    # which a terminal reading the log would obey, and %0A would forge a new log line.
    app = logger_for(recorder, client, paths=[re.compile(r"/v1/agents/[^/]+/run")])
    sent = "/v1/agents/%1B%5B2J%0Aforged/run"
    with caplog.at_level(logging.WARNING, logger="llmreq_mongo.integrations.asgi"):
        async with http(app) as web:
            response = await web.post(sent, content=b"not json")
    assert response.status_code == 200 and app.stats.skipped_not_json == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert sent in line
    assert "\x1b" not in line and "\n" not in line


async def test_oversized_bodies_are_skipped_counted_logged_and_passed_on_whole(
    recorder: Recorder, client: LLMClient, http: HttpFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = logger_for(recorder, client, max_body_bytes=1000)
    small = json.dumps({"fill": "x" * 900}).encode()
    large = json.dumps({"fill": "x" * 1000}).encode()
    with caplog.at_level(logging.WARNING, logger="llmreq_mongo.integrations.asgi"):
        async with http(app) as web:
            # with a Content-Length, and streamed without one
            r1 = await web.post(CHAT, content=large)
            r2 = await web.post(CHAT, content=_chunks(large, 300))
            r3 = await web.post(CHAT, content=small)
    assert r1.content == r2.content == large and r3.content == small
    assert app.stats.skipped_too_large == 2 and app.stats.recorded == 1
    assert [r.getMessage().count("max_body_bytes=1000") for r in caplog.records] == [1, 1]
    await recorder.flush()
    assert [len(r.request["fill"]) for r in await stored()] == [900]


async def test_a_client_that_disconnects_mid_body_is_not_recorded(
    recorder: Recorder, client: LLMClient
) -> None:
    pending: list[Message] = [
        {"type": "http.request", "body": b'{"a": 1', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return pending.pop(0)

    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend([await receive(), await receive()])

    async def send(message: Message) -> None:
        raise AssertionError

    logger = logger_for(recorder, client, app=app)
    await logger(_scope("POST", CHAT), receive, send)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
    assert logger.stats.skipped_incomplete == 1 and logger.stats.recorded == 0


async def _post_raw(
    logger: LLMRequestLogger, body: bytes, lengths: list[bytes]
) -> tuple[int, bytes]:
    """Send one request straight through ASGI, with exactly the Content-Length headers given."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json")]
    headers += [(b"content-length", value) for value in lengths]
    await logger(_scope("POST", CHAT, headers=headers), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    "lengths",
    [
        ["²".encode("latin-1")],  # a digit to str.isdigit(), refused by int()
        ["¹²".encode("latin-1")],
        ["١٢".encode()],  # Arabic-Indic digits, sent as UTF-8
        [b"12a"],
        [b"-12"],
        [b"+12"],
        [b"1.5"],
        [b"0x10"],
        [b""],
        [b"  "],
        [b"12, 12"],
        [b"12", b"13"],
    ],
    ids=repr,
)
async def test_a_malformed_content_length_is_passed_on_unrecorded(
    recorder: Recorder, client: LLMClient, caplog: pytest.LogCaptureFixture, lengths: list[bytes]
) -> None:
    body = json.dumps({"q": "hi"}).encode()
    logger = logger_for(recorder, client)
    with caplog.at_level(logging.WARNING, logger="llmreq_mongo.integrations.asgi"):
        status, answered = await _post_raw(logger, body, lengths)
    assert (status, answered) == (200, body)  # the app got the body as sent
    assert logger.stats.as_dict() | {"last_error": None} == {
        **RequestLoggerStats(seen=1, skipped_not_json=1).as_dict(),
        "last_error": None,
    }
    [line] = [r.getMessage() for r in caplog.records]
    assert "Content-Length" in line and CHAT in line and "\n" not in line
    await recorder.flush()
    assert await stored() == []


@pytest.mark.parametrize(
    ("lengths", "recorded", "too_large"),
    [
        ([b"13"], 1, 0),
        ([b" 13\t"], 1, 0),
        ([b"13", b"13"], 1, 0),  # a repeated identical value is one length
        ([b"0013"], 1, 0),
        ([b"9" * 30], 0, 1),  # absurdly long, but digits: too large, not a crash
        ([b"9" * 5000], 0, 1),  # past Python's own limit on int() of a string
    ],
    ids=["13", "13 padded", "13 twice", "0013", "30 nines", "5000 nines"],
)
async def test_a_well_formed_content_length_is_read_as_ascii_digits(
    recorder: Recorder, client: LLMClient, lengths: list[bytes], recorded: int, too_large: int
) -> None:
    body = b'{"q": "hi!"}'
    assert len(body) == 12  # the declared sizes are checks, not the framing: ASGI frames it
    logger = logger_for(recorder, client)
    assert await _post_raw(logger, body, lengths) == (200, body)
    assert (logger.stats.recorded, logger.stats.skipped_too_large) == (recorded, too_large)
    assert logger.stats.skipped_not_json == 0


# -- recorder problems never reach the app ---------------------------------------------------


async def test_a_payload_the_recorder_refuses_never_fails_the_app(
    recorder: Recorder, client: LLMClient, http: HttpFactory
) -> None:
    body = b'{"too_big_for_bson": 123456789012345678901234567890}'
    app = logger_for(recorder, client)
    async with http(app) as web:
        response = await web.post(CHAT, content=body)
        await web.post(CHAT, json={"fine": True})
    assert response.status_code == 200 and response.content == body
    assert app.stats.record_errors == 1 and app.stats.recorded == 1
    assert (app.stats.last_error or "").startswith("InvalidPayload:")
    await recorder.flush()
    assert [r.request for r in await stored()] == [{"fine": True}]


async def test_a_stopped_recorder_never_fails_the_app(
    llmreq_db: object, client: LLMClient, http: HttpFactory
) -> None:
    stats = RequestLoggerStats()
    stopped = Recorder()
    await stopped.stop()
    app = logger_for(stopped, client, stats=stats)
    async with http(app) as web:
        responses = [await web.post(CHAT, json={"q": i}) for i in range(3)]
    assert [r.json() for r in responses] == [{"q": 0}, {"q": 1}, {"q": 2}]
    assert stats.record_errors == 3 and stats.recorded == 0
    assert (stats.last_error or "").startswith("RecorderClosed:")


async def test_recorder_and_client_can_come_from_callables(
    recorder: Recorder, client: LLMClient, http: HttpFactory
) -> None:
    current: dict[str, Any] = {}
    app = LLMRequestLogger(
        echo_app, recorder=lambda: current.get("rec"), llm_client=lambda: current.get("client")
    )
    async with http(app) as web:
        await web.post(CHAT, json={"n": 1})  # before start-up: nothing to record with
        current.update(rec=recorder, client=client)
        await web.post(CHAT, json={"n": 2})
    await recorder.flush()
    assert [r.request["n"] for r in await stored()] == [2]
    assert app.stats.record_errors == 1
    assert "no recorder is available yet" in (app.stats.last_error or "")
    assert app.stats.as_dict()["recorded"] == 1


# -- configuration is checked up front -------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paths": "/v1/chat/completions"}, "wrap it in a list"),
        ({"paths": ["v1/chat"]}, "neither an absolute path"),
        ({"paths": []}, "paths is empty"),
        ({"methods": "POST"}, "methods takes a sequence"),
        ({"methods": ["PO ST"]}, "not an HTTP method"),
        ({"methods": []}, "methods is empty"),
        ({"max_body_bytes": 0}, "must be positive"),
        ({"max_body_bytes": 1.5}, "must be an integer"),
        ({"session_key_from": ["bogus:x"]}, "is not valid"),
        ({"session_key_from": ["header:"]}, "is not valid"),
        ({"session_key_from": ["body:a..b"]}, "is not valid"),
        ({"session_key_from": "header:x"}, "got the string"),
        ({"recorder": 42}, "recorder must be"),
        ({"llm_client": "support-bot"}, "llm_client must be"),
        ({"stats": {}}, "stats must be"),
    ],
)
def test_bad_options_are_refused_when_the_middleware_is_built(
    options: dict[str, Any], message: str
) -> None:
    settings: dict[str, Any] = {"recorder": Recorder(), "llm_client": lambda: None, **options}
    with pytest.raises(InvalidInput, match=re.escape(message)):
        LLMRequestLogger(echo_app, **settings)


async def test_an_unsaved_client_is_refused_up_front(llmreq_db: object) -> None:
    with pytest.raises(InvalidInput, match="is not saved"):
        LLMRequestLogger(echo_app, recorder=Recorder(), llm_client=LLMClient(name="unsaved"))


def test_session_key_finder_reads_headers_case_insensitively_and_tolerates_bad_cookies() -> None:
    finder = SessionKeyFinder(["cookie:sid", "header:X-Session-Key"])
    scope = _scope(
        "POST", CHAT, headers=[(b"cookie", b'broken; =x; sid="quoted"'), (b"x-session-key", b"h")]
    )
    assert finder.find(scope) == ("quoted", 0)
    assert SessionKeyFinder(["header:X-SESSION-KEY"]).find(scope) == ("h", 0)
    assert finder.find(_scope("POST", CHAT)) == (None, 0)
    assert not finder.needs_body


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("café 🗼".encode(), "café 🗼"),  # UTF-8, as httpx and browsers send it
        ("café".encode("latin-1"), "café"),  # not UTF-8: Latin-1, HTTP's old reading
        (b"plain-ascii", "plain-ascii"),
    ],
)
def test_a_header_key_reads_as_recording_transport_reads_it(raw: bytes, key: str) -> None:
    scope = _scope("POST", CHAT, headers=[(b"x-session-key", raw)])
    assert SessionKeyFinder(["header:x-session-key"]).find(scope) == (key, 0)
    # RecordingTransport reads the header through httpx's own decoding.
    request = httpx.Request(
        "POST", "http://upstream/v1/chat/completions", headers=[(b"x-session-key", raw)]
    )
    assert request.headers.get("x-session-key") == key


def _scope(method: str, path: str, *, headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": headers or [],
    }
