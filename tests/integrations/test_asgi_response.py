"""LLMRequestLogger(capture="response"): what is passed on, when the record is written, and
what is recorded when the handler raises, the client goes away or the response never ends."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import bson
import httpx
import pytest
from capture_upstream import (
    TEXT_PIECES,
    chat_stream_chunks,
    upstream_app,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from llmreq_mongo import (
    InvalidInput,
    LLMClient,
    LLMClientRequest,
    LLMResponse,
    Recorder,
    TokenUsage,
)
from llmreq_mongo.integrations.asgi import (
    ASGIApp,
    LLMRequestLogger,
    Message,
    Receive,
    RequestLoggerStats,
    Scope,
    Send,
)

CHAT = "/v1/chat/completions"
SSE = [(b"content-type", b"text/event-stream; charset=utf-8")]
EVENTS = chat_stream_chunks("answer", include_usage=True)
Serve = Callable[[ASGIApp], Any]
#: Long enough never to be reached by a test that passes; it only stops a hang.
GUARD = 30


class Boom(RuntimeError):
    """What the handlers in these tests raise."""


def logger_for(recorder: Recorder, client: LLMClient, app: ASGIApp, **options: Any) -> Any:
    return LLMRequestLogger(app, recorder=recorder, llm_client=client, **options)


def request_messages(body: dict[str, Any], *then: Message) -> Receive:
    """A server's ``receive``: the body in one message, then ``then``, then it waits."""
    pending: list[Message] = [
        {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False},
        *then,
    ]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # as a server does until the client goes away
        raise AssertionError("unreachable")

    return receive


def scope_for(path: str = CHAT, headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": headers or [],
    }


async def stored() -> list[LLMClientRequest]:
    return await LLMClientRequest.objects.order_by("created_at", "id").to_list()


async def only_record(recorder: Recorder) -> LLMClientRequest:
    await recorder.flush()
    (record,) = await stored()
    return record


def sending(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> ASGIApp:
    """An app that answers 200 with ``headers`` and the body ``chunks``, as given."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def streamed_text(record: LLMClientRequest) -> str:
    assert record.response is not None and record.response.body is not None
    content: str = record.response.body["choices"][0]["message"]["content"]
    return content


# -- passed on unchanged and at once ---------------------------------------------------------


async def test_every_message_reaches_the_server_unchanged_before_the_app_goes_on(
    recorder: Recorder, client: LLMClient
) -> None:
    server_got: list[Message] = []

    async def send(message: Message) -> None:
        server_got.append(message)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        messages: list[Message] = [{"type": "http.response.start", "status": 200, "headers": SSE}]
        messages += [{"type": "http.response.body", "body": e, "more_body": True} for e in EVENTS]
        messages.append({"type": "http.response.body", "body": b"", "more_body": False})
        for message in messages:
            await send(message)
            # The server already has this very message, and nothing was held back.
            assert server_got[-1] is message and len(server_got) == messages.index(message) + 1

    await logger_for(recorder, client, app)(scope_for(), request_messages({"stream": True}), send)
    assert [m.get("body") for m in server_got[1:-1]] == EVENTS
    record = await only_record(recorder)
    assert record.response is not None and record.response.usage is not None
    assert streamed_text(record) == "".join(TEXT_PIECES)


async def test_the_client_reads_each_chunk_before_the_app_sends_the_next(
    recorder: Recorder, client: LLMClient, served: Serve
) -> None:
    read = [asyncio.Event() for _ in EVENTS]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        for n, event in enumerate(EVENTS):
            await send({"type": "http.response.body", "body": event, "more_body": True})
            # Only once the client has this chunk does the next one go: a middleware
            # that held chunks back would leave both sides waiting, and the guard fail.
            await asyncio.wait_for(read[n].wait(), GUARD)
        await send({"type": "http.response.body", "body": b""})

    wrapped = logger_for(recorder, client, app)
    async with (
        served(wrapped) as base,
        httpx.AsyncClient(base_url=base) as web,
        web.stream("POST", CHAT, json={"stream": True}) as response,
    ):
        buffer = b""
        chunks = response.aiter_raw()
        for n in range(len(EVENTS)):
            expected = b"".join(EVENTS[: n + 1])
            while len(buffer) < len(expected):
                buffer += await chunks.__anext__()
            assert buffer == expected  # this chunk, and nothing of the next
            read[n].set()
        assert [chunk async for chunk in chunks] == []
    record = await only_record(recorder)
    assert record.response is not None and record.response.error is None
    assert streamed_text(record) == "".join(TEXT_PIECES)


# -- when the record is written ---------------------------------------------------------------


async def test_the_record_is_written_when_the_response_ends_stamped_with_the_arrival(
    recorder: Recorder, client: LLMClient
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        # The session key is known on arrival; the record is not written yet.
        assert scope["state"]["llmreq_session_key"] == "conv-7"
        await recorder.flush()
        assert await stored() == []
        await asyncio.sleep(0.05)
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        for event in EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    scope = scope_for(headers=[(b"x-session-key", b"conv-7")])
    await logger_for(recorder, client, app)(scope, request_messages({"stream": True}), _discard)
    record = await only_record(recorder)
    assert scope["state"]["llmreq_record_id"] == record.id
    response = record.response
    assert response is not None and response.ttft_ms is not None
    # Measured from the arrival, so the handler's 50 ms before its first byte count.
    assert response.ttft_ms >= 49 and response.latency_ms >= response.ttft_ms
    assert response.completed_at - record.created_at >= dt.timedelta(milliseconds=40)
    assert record.updated_at == response.completed_at


async def test_a_slow_upload_counts_from_the_first_byte_of_the_request(
    recorder: Recorder, client: LLMClient
) -> None:
    parts = [b'{"messages": [', b"]}"]

    async def receive() -> Message:
        if len(parts) == 1:
            await asyncio.sleep(0.05)  # the client's upload is slow
        more = len(parts) > 1
        return {"type": "http.request", "body": parts.pop(0), "more_body": more}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"id": "r"}'})

    await logger_for(recorder, client, app)(scope_for(), receive, _discard)
    record = await only_record(recorder)
    assert record.request == {"messages": []} and record.response is not None
    assert record.response.latency_ms >= 49
    assert record.response.completed_at - record.created_at >= dt.timedelta(milliseconds=40)


async def test_capture_request_writes_the_record_on_arrival_and_never_wraps_send(
    recorder: Recorder, client: LLMClient
) -> None:
    server_sends: list[Send] = []

    async def send(message: Message) -> None:
        pass

    async def app(scope: Scope, receive: Receive, app_send: Send) -> None:
        server_sends.append(app_send)
        await receive()
        await recorder.flush()
        (record,) = await stored()  # written before any answer
        assert record.response is None and scope["state"]["llmreq_record_id"] == record.id
        await app_send({"type": "http.response.start", "status": 200, "headers": SSE})
        await app_send({"type": "http.response.body", "body": EVENTS[0]})

    logger = logger_for(recorder, client, app, capture="request")
    await logger(scope_for(), request_messages({"q": 1}), send)
    assert server_sends == [send]
    record = await only_record(recorder)
    assert record.request == {"q": 1} and record.response is None


async def test_a_body_over_max_response_bytes_is_not_kept_but_usage_still_is(
    recorder: Recorder, client: LLMClient, http: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    app = logger_for(recorder, client, upstream_app(), max_response_bytes=300)
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}
    async with http(app) as web:
        answer = await web.post(CHAT, json=body)
    assert answer.content == b"".join(chat_stream_chunks("answer", include_usage=True))
    response = (await only_record(recorder)).response
    assert response is not None
    assert response.truncated is True and response.body is None
    assert response.usage == TokenUsage(
        input_tokens=31,
        output_tokens=12,
        total_tokens=43,
        cache_read_input_tokens=16,
        reasoning_output_tokens=4,
    )
    assert response.finish_reasons == ["stop"] and response.status == 200


@pytest.mark.parametrize("limit", [4 * 1024 * 1024, 100_000], ids=["kept", "over-the-limit"])
async def test_a_long_stream_is_read_whole_in_batches(
    recorder: Recorder, client: LLMClient, limit: int
) -> None:
    # 3,000 events, about 600 KB: parsed in batches while it streams, and at its end.
    head, *middle, finish, usage, done = chat_stream_chunks("answer", include_usage=True)
    piece = json.loads(middle[1][6:])
    piece["choices"][0]["delta"]["content"] = "0123456789"
    events = [head, *[b"data: " + json.dumps(piece).encode() + b"\n\n"] * 3000]
    events += [finish, usage, done]

    logger = logger_for(recorder, client, sending(SSE, events), max_response_bytes=limit)
    await logger(scope_for(), request_messages({"stream": True}), _discard)
    response = (await only_record(recorder)).response
    assert response is not None and response.error is None
    assert response.usage is not None and response.usage.total_tokens == 43
    assert response.finish_reasons == ["stop"]
    if limit == 100_000:
        assert response.truncated is True and response.body is None
    else:
        assert response.truncated is False
        assert response.body["choices"][0]["message"]["content"] == "0123456789" * 3000


# -- failures: recorded with error, the exception unchanged -----------------------------------


def raising_app(when: str, error: BaseException) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if when == "mid-stream":
            await send({"type": "http.response.start", "status": 200, "headers": SSE})
            for event in EVENTS[:3]:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        raise error

    return app


@pytest.mark.parametrize("when", ["before-the-response", "mid-stream"])
async def test_a_handler_that_raises_is_recorded_and_the_same_exception_propagates(
    recorder: Recorder, client: LLMClient, when: str
) -> None:
    bare_error = Boom("the model server is down")
    with pytest.raises(Boom) as bare:
        await raising_app(when, bare_error)(scope_for(), request_messages({"q": 1}), _discard)
    error = Boom("the model server is down")
    logger = logger_for(recorder, client, raising_app(when, error))
    with pytest.raises(Boom) as wrapped:
        await logger(scope_for(), request_messages({"q": 1}), _discard)
    assert wrapped.value is error and bare.value is bare_error  # the very object, untouched
    assert wrapped.value.__cause__ is None and wrapped.value.__context__ is None
    record = await only_record(recorder)
    response = record.response
    assert response is not None
    assert response.error == "the handler raised Boom: the model server is down"
    assert logger.stats.call_errors == 1 and logger.stats.recorded == 1
    if when == "mid-stream":
        assert response.status == 200 and response.stream is True
        assert streamed_text(record) == "".join(TEXT_PIECES[:2])  # what was sent
    else:
        assert response.status is None and response.body is None


async def test_a_disconnect_the_app_receives_is_recorded_with_what_was_sent(
    recorder: Recorder, client: LLMClient
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        for event in EVENTS[:3]:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        assert (await receive())["type"] == "http.disconnect"  # then stops, as Starlette does

    receive = request_messages({"stream": True}, {"type": "http.disconnect"})
    await logger_for(recorder, client, app)(scope_for(), receive, _discard)
    record = await only_record(recorder)
    assert record.response is not None and record.response.status == 200
    assert record.response.error == "the client disconnected before the response ended"
    assert streamed_text(record) == "".join(TEXT_PIECES[:2])


async def test_a_send_that_raises_is_recorded_as_a_disconnect_and_propagates(
    recorder: Recorder, client: LLMClient
) -> None:
    gone = OSError("the connection was reset")  # what an ASGI 2.4 server raises
    sent: list[Message] = []

    async def send(message: Message) -> None:
        if len(sent) == 3:
            raise gone
        sent.append(message)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        for event in EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})

    with pytest.raises(OSError, match="reset") as raised:
        await logger_for(recorder, client, app)(scope_for(), request_messages({}), send)
    assert raised.value is gone
    record = await only_record(recorder)
    response = record.response
    assert response is not None and response.error is not None
    assert response.error == (
        "the client disconnected before the response ended "
        "(sending raised OSError: the connection was reset)"
    )
    assert streamed_text(record) == "".join(TEXT_PIECES[:1])  # the chunk that failed is not


async def test_a_client_that_hangs_up_on_uvicorn_is_recorded_with_what_it_received(
    recorder: Recorder, client: LLMClient, served: Serve
) -> None:
    first_sent = asyncio.Event()

    async def chat(request: Request) -> StreamingResponse:
        async def events() -> Any:
            yield EVENTS[0]
            yield EVENTS[1]
            first_sent.set()
            await asyncio.Event().wait()  # the model is slow; the client will not wait
            yield EVENTS[2]

        return StreamingResponse(events(), media_type="text/event-stream")

    stats = RequestLoggerStats()
    upstream = Starlette(routes=[Route(CHAT, chat, methods=["POST"])])
    app = logger_for(recorder, client, upstream, stats=stats)
    async with served(app) as base, httpx.AsyncClient(base_url=base) as web:
        async with web.stream("POST", CHAT, json={"stream": True}) as answer:
            received = b""
            async for chunk in answer.aiter_raw():
                received += chunk
                if received == EVENTS[0] + EVENTS[1]:
                    break
        await asyncio.wait_for(first_sent.wait(), GUARD)
        # Closing the response closed the connection; the server tells the app.
        for _ in range(GUARD * 100):
            if stats.recorded:
                break
            await asyncio.sleep(0.01)
    record = await only_record(recorder)
    assert record.response is not None and record.response.status == 200
    assert record.response.error == "the client disconnected before the response ended"
    assert streamed_text(record) == TEXT_PIECES[0]
    assert stats.call_errors == 1


async def test_an_app_that_returns_before_the_response_ends_is_recorded_as_such(
    recorder: Recorder, client: LLMClient
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": SSE})
        await send({"type": "http.response.body", "body": EVENTS[0], "more_body": True})

    await logger_for(recorder, client, app)(scope_for(), request_messages({}), _discard)
    record = await only_record(recorder)
    assert record.response is not None
    assert record.response.error == "the application returned before the response ended"


async def test_one_record_per_call_even_when_the_app_raises_after_the_response(
    recorder: Recorder, client: LLMClient
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"id": "x"}'})
        raise Boom("a background task failed")  # the client already has its answer

    with pytest.raises(Boom):
        await logger_for(recorder, client, app)(scope_for(), request_messages({}), _discard)
    record = await only_record(recorder)
    assert record.response is not None and record.response.error is None
    assert record.response.body == {"id": "x"}


async def _discard(message: Message) -> None:
    pass


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"capture": "both"}, "capture must be 'response'"),
        ({"capture": None}, "got None"),
        ({"capture": ["response"]}, "capture must be"),
        ({"max_response_bytes": 0}, "max_response_bytes must be positive, got 0"),
        ({"max_response_bytes": -1}, "max_response_bytes must be positive"),
        ({"max_response_bytes": 1.5}, "max_response_bytes must be an integer"),
        ({"max_response_bytes": True}, "max_response_bytes must be an integer"),
        ({"max_response_bytes": "4MiB"}, "max_response_bytes must be an integer"),
    ],
)
def test_bad_capture_options_are_refused_when_the_middleware_is_built(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        LLMRequestLogger(upstream_app(), recorder=Recorder(), llm_client=lambda: None, **options)


def test_capture_defaults_to_response_with_a_4_mib_copy() -> None:
    logger = LLMRequestLogger(upstream_app(), recorder=Recorder(), llm_client=lambda: None)
    assert logger.capture == "response" and logger.max_response_bytes == 4 * 1024 * 1024


# -- the payloads the middleware decoded are not walked again, and are stored the same --------

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def json_app(answer: dict[str, Any]) -> ASGIApp:
    body = json.dumps(answer).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        head = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": body})

    return app


async def raw_stored() -> dict[str, Any]:
    """The one stored record as MongoDB holds it (keys escaped, BSON types as stored)."""
    (document,) = await LLMClientRequest.get_pymongo_collection().find({}).to_list()
    return document


async def send_nowhere(message: Message) -> None:
    pass


async def test_a_decoded_request_and_answer_are_stored_as_record_stores_them(
    recorder: Recorder, client: LLMClient
) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "$x": {"a.b": 1}}
    answer = {"id": "r", "choices": [], "usage": {"prompt_tokens": 1}, "a.b": [1.5, None]}
    app = logger_for(recorder, client, json_app(answer))
    await app(scope_for(), request_messages(request), send_nowhere)
    await recorder.flush()
    through_middleware = await raw_stored()
    await LLMClientRequest.get_pymongo_collection().delete_many({})
    stored_response = through_middleware["response"]
    recorder.record(
        client,
        request,
        response=LLMResponse.model_validate({**stored_response, "body": answer}).model_dump(),
        created_at=through_middleware["created_at"].replace(tzinfo=dt.timezone.utc),
        updated_at=through_middleware["updated_at"].replace(tzinfo=dt.timezone.utc),
    )
    await recorder.flush()
    by_hand = await raw_stored()
    for document in (through_middleware, by_hand):
        del document["_id"]
    assert bson.encode(through_middleware) == bson.encode(by_hand)
    assert "%24x" in through_middleware["request"]  # escaped, as any payload is


async def test_a_hook_that_changes_the_payload_in_place_gets_the_full_check(
    client: LLMClient,
) -> None:
    def stamp(payload: Any) -> Any:
        payload["when"] = WHEN  # in place: the same object, no longer plain JSON
        return payload

    async with Recorder(before_record=stamp) as recorder:
        app = logger_for(recorder, client, json_app({"id": "r"}))
        await app(scope_for(), request_messages({"model": "m"}), send_nowhere)
        await recorder.flush()
    # Stored as the check converts a datetime (an ISO string), not as BSON encodes one.
    assert (await raw_stored())["request"]["when"] == "2026-01-02T03:04:05+00:00"


async def test_a_recorder_of_the_callers_that_changes_the_payload_gets_the_full_check(
    recorder: Recorder, client: LLMClient
) -> None:
    class Stamping:
        """A recorder of the caller's own: it changes the payload in place, then records."""

        def record(self, llm_client: Any, request: Any, **fields: Any) -> Any:
            request["when"] = WHEN
            return recorder.record(llm_client, request, **fields)

    app = LLMRequestLogger(json_app({"id": "r"}), recorder=Stamping(), llm_client=client)
    await app(scope_for(), request_messages({"model": "m"}), send_nowhere)
    await recorder.flush()
    assert (await raw_stored())["request"]["when"] == "2026-01-02T03:04:05+00:00"
