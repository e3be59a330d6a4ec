"""RecordingTransport's options: session keys, the header, paths, encodings, refusals."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
from capture_upstream import upstream_app
from sdk_clients import HeaderSpy, records
from starlette.middleware.gzip import GZipMiddleware

from llmreq_mongo import InvalidInput, LLMClient, Recorder
from llmreq_mongo.integrations._decoding import EXPANSION
from llmreq_mongo.integrations.httpx import (
    DEFAULT_PATHS,
    SESSION_KEY_HEADER,
    RecordingTransport,
    TransportStats,
)

URL = "http://upstream.test"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def through(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, base_url=URL)


async def test_the_session_key_from_the_header_a_string_or_a_callable(
    recorder: Recorder, bot: LLMClient
) -> None:
    spy = HeaderSpy(upstream_app())
    sources: list[Any] = [None, "fixed", lambda request: request.headers["x-user"]]
    for source in sources:
        transport = RecordingTransport(
            httpx.ASGITransport(app=spy), recorder=recorder, llm_client=bot, session_key=source
        )
        async with through(transport) as http:
            response = await http.post(
                "/v1/chat/completions",
                json=BODY,
                headers={"X-Session-Key": "from-header", "X-User": "from-callable"},
            )
            assert response.status_code == 200
    await recorder.flush()
    assert [d.session_key for d in await records()] == ["from-header", "fixed", "from-callable"]
    # The header never reaches the provider, whichever source the key came from.
    assert all(SESSION_KEY_HEADER not in seen for seen in spy.requests)
    assert all(seen["x-user"] == "from-callable" for seen in spy.requests)


async def test_the_header_is_sent_on_when_asked_and_the_callers_request_is_untouched(
    recorder: Recorder, bot: LLMClient
) -> None:
    spy = HeaderSpy(upstream_app())
    transport = RecordingTransport(
        httpx.ASGITransport(app=spy),
        recorder=recorder,
        llm_client=bot,
        forward_session_header=True,
    )
    async with through(transport) as http:
        response = await http.post(
            "/v1/chat/completions", json=BODY, headers={"X-Session-Key": "k"}
        )
    assert spy.requests[-1][SESSION_KEY_HEADER] == "k"
    assert response.request.headers[SESSION_KEY_HEADER] == "k"
    stripping = RecordingTransport(httpx.ASGITransport(app=spy), recorder=recorder, llm_client=bot)
    async with through(stripping) as http:
        request = http.build_request(
            "POST", "/v1/chat/completions", json=BODY, headers={"X-Session-Key": "k2"}
        )
        await http.send(request)
    assert SESSION_KEY_HEADER not in spy.requests[-1]
    assert request.headers[SESSION_KEY_HEADER] == "k2"  # a copy was sent, not this one
    await recorder.flush()
    assert [d.session_key for d in await records()] == ["k", "k2"]


async def test_a_failing_session_key_callable_still_records_the_call(
    recorder: Recorder, bot: LLMClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: httpx.Request) -> str:
        raise RuntimeError("no user")

    transport = RecordingTransport(
        httpx.ASGITransport(app=upstream_app()),
        recorder=recorder,
        llm_client=bot,
        session_key=broken,
    )
    async with through(transport) as http:
        assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
    await recorder.flush()
    [doc] = await records()
    assert doc.session_key is None and doc.response is not None
    assert "session_key raised" in caplog.text


async def test_an_unusable_session_key_is_dropped_not_the_call(
    recorder: Recorder, bot: LLMClient
) -> None:
    keys: list[Any] = ["k" * 256, 42]
    transport = RecordingTransport(
        httpx.ASGITransport(app=upstream_app()),
        recorder=recorder,
        llm_client=bot,
        session_key=lambda request: keys.pop(0) if keys else "k" * 256,
    )
    headers = RecordingTransport(
        httpx.ASGITransport(app=upstream_app()), recorder=recorder, llm_client=bot
    )
    async with through(transport) as http, through(headers) as by_header:
        for _ in range(2):
            assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
        sent = await by_header.post(
            "/v1/chat/completions", json=BODY, headers={"X-Session-Key": "k" * 256}
        )
        assert sent.status_code == 200
    await recorder.flush()
    docs = await records()
    assert len(docs) == 3 and all(d.session_key is None and d.response for d in docs)
    assert transport.stats.session_keys_ignored == 2
    assert headers.stats.session_keys_ignored == 1 and headers.stats.skipped == 0


async def test_a_full_queue_never_holds_the_response_back(bot: LLMClient) -> None:
    # Blocking is the recorder's default; the SDK's caller must not wait on it.
    async with Recorder(max_queue=1, on_full="block", flush_interval=60) as recorder:
        recorder.record(bot, {"n": 0})  # the queue is full now
        transport = RecordingTransport(
            httpx.ASGITransport(app=upstream_app()), recorder=recorder, llm_client=bot
        )
        async with through(transport) as http:
            for _ in range(3):
                answer = await http.post("/v1/chat/completions", json=BODY)
                assert answer.status_code == 200 and answer.json()["choices"]
        assert recorder.stats.accepted == 1  # the three calls were refused, not queued
        await recorder.flush()


async def test_only_posts_to_the_paths_are_recorded(recorder: Recorder, bot: LLMClient) -> None:
    assert DEFAULT_PATHS == ("/v1/chat/completions", "/v1/responses", "/v1/messages")
    spy = HeaderSpy(upstream_app())
    transport = RecordingTransport(
        httpx.ASGITransport(app=spy),
        recorder=recorder,
        llm_client=bot,
        paths=["/v1/responses", re.compile(r"/v1/mess\w+")],
    )
    async with through(transport) as http:
        chat = await http.post("/v1/chat/completions", json=BODY)
        responses = await http.post("/v1/responses", json={"model": "m", "input": "hi"})
        messages = await http.post("/v1/messages", json={"model": "c", "messages": []})
        listed = await http.get("/v1/responses")
        missing = await http.post("/v1/embeddings", json={"input": "x"})
    assert chat.status_code == responses.status_code == messages.status_code == 200
    assert listed.status_code == 405 and missing.status_code == 404
    assert [r["path"] for r in spy.requests] == [
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/responses",
        "/v1/embeddings",
    ]
    await recorder.flush()
    assert [d.request for d in await records()] == [
        {"model": "m", "input": "hi"},
        {"model": "c", "messages": []},
    ]
    assert transport.stats == TransportStats(seen=2, recorded=2, skipped=0)


async def test_a_body_that_is_not_json_is_sent_and_counted(
    recorder: Recorder, bot: LLMClient
) -> None:
    sent: list[bytes] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json={"ok": True})

    async def streamed() -> Any:
        yield b'{"model": '
        yield b'"gpt-4o"}'

    transport = RecordingTransport(httpx.MockTransport(upstream), recorder=recorder, llm_client=bot)
    async with through(transport) as http:
        await http.post("/v1/messages", content=b"not json", headers={"content-type": "text/plain"})
        await http.post("/v1/messages", content=streamed())  # not read before it is sent
    assert sent == [b"not json", b'{"model": "gpt-4o"}']  # sent all the same
    assert transport.stats == TransportStats(seen=2, recorded=0, skipped=2)
    spy = HeaderSpy(upstream_app())
    no_recorder = RecordingTransport(
        httpx.ASGITransport(app=spy), recorder=lambda: None, llm_client=bot
    )
    async with through(no_recorder) as http:
        assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
    assert no_recorder.stats.skipped == 1
    await recorder.flush()
    assert await records() == []


async def test_a_gzipped_answer_is_read_while_the_client_decodes_its_own(
    recorder: Recorder, bot: LLMClient
) -> None:
    app = GZipMiddleware(upstream_app(), minimum_size=16)
    transport = RecordingTransport(httpx.ASGITransport(app=app), recorder=recorder, llm_client=bot)
    async with through(transport) as http:
        response = await http.post("/v1/chat/completions", json=BODY)
    assert response.headers["content-encoding"] == "gzip"
    await recorder.flush()
    [doc] = await records()
    assert doc.response is not None and doc.response.body == response.json()
    assert doc.response.usage is not None and doc.response.usage.input_tokens == 31


async def test_an_answer_decompressing_past_the_bound_is_not_read(
    recorder: Recorder, bot: LLMClient
) -> None:
    limit = 64 * 1024
    bomb = gzip.compress(b" " * (limit * EXPANSION + 1))  # about 260 bytes of gzip

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-encoding": "gzip", "content-type": "application/json"},
            stream=httpx.ByteStream(bomb),
        )

    transport = RecordingTransport(
        httpx.MockTransport(handler), recorder=recorder, llm_client=bot, max_response_bytes=limit
    )
    async with through(transport) as http:
        got = await http.post("/v1/chat/completions", json=BODY)
        assert len(got.content) == limit * EXPANSION + 1  # the client decodes it whole
    await recorder.flush()
    [doc] = await records()
    assert doc.response is not None and doc.response.status == 200 and doc.response.body is None
    assert doc.response.error is not None
    assert f"more than {limit * EXPANSION:,} bytes" in doc.response.error


async def test_an_unreadable_encoding_keeps_status_and_says_why(
    recorder: Recorder, bot: LLMClient
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-encoding": "gzip", "content-type": "application/json"},
            stream=httpx.ByteStream(b"this is not gzip"),
        )

    def packed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-encoding": "compress"}, stream=httpx.ByteStream(b"x")
        )

    transport = RecordingTransport(httpx.MockTransport(handler), recorder=recorder, llm_client=bot)
    async with through(transport) as http:
        with pytest.raises(httpx.DecodingError):  # the client cannot decode it either
            await http.post("/v1/chat/completions", json=BODY)
    transport = RecordingTransport(httpx.MockTransport(packed), recorder=recorder, llm_client=bot)
    async with through(transport) as http:
        got = await http.post("/v1/chat/completions", json=BODY)  # httpx passes it as it is
        assert got.content == b"x"
    await recorder.flush()
    broken, unknown = await records()
    assert broken.response is not None and broken.response.status == 200
    assert broken.response.error is not None and "could not be decoded" in broken.response.error
    assert unknown.response is not None and unknown.response.error is not None
    assert "'compress'" in unknown.response.error and unknown.response.body is None


async def test_a_body_the_inner_transport_already_read_is_recorded(
    recorder: Recorder, bot: LLMClient
) -> None:
    body = {"id": "c1", "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
    mock = httpx.MockTransport(lambda request: httpx.Response(201, json=body))
    transport = RecordingTransport(mock, recorder=recorder, llm_client=bot)
    async with through(transport) as http:
        got = await http.post("/v1/chat/completions", json=BODY)
    assert got.json() == body
    await recorder.flush()
    [doc] = await records()
    assert doc.response is not None and doc.response.status == 201
    assert doc.response.body == body
    assert doc.response.usage is not None and doc.response.usage.output_tokens == 3


def test_options_are_checked_at_construction(recorder: Recorder, bot: LLMClient) -> None:
    ok: dict[str, Any] = {"recorder": recorder, "llm_client": bot}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**ok, "recorder": "r"}, "recorder must be"),
        ({**ok, "llm_client": 3}, "llm_client must be"),
        ({**ok, "session_key": 5}, "session_key must be"),
        ({**ok, "paths": "/v1/chat/completions"}, "single value"),
        ({**ok, "paths": []}, "paths is empty"),
        ({**ok, "paths": ["v1/chat"]}, "starting with '/'"),
        ({**ok, "forward_session_header": "yes"}, "forward_session_header"),
        ({**ok, "max_response_bytes": 0}, "max_response_bytes"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidInput, match=message):
            RecordingTransport(**options)
    with pytest.raises(InvalidInput, match="transport must be"):
        RecordingTransport(object(), **ok)  # type: ignore[arg-type]


async def test_an_unsaved_client_is_refused(recorder: Recorder, llmreq_db: object) -> None:
    with pytest.raises(InvalidInput, match="not saved"):
        RecordingTransport(recorder=recorder, llm_client=LLMClient(name="new"))


def test_missing_extra_is_a_clear_error() -> None:
    # A real interpreter in which httpx cannot be imported.
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "from llmreq_mongo.errors import ExtraMissing\n"
        "try:\n    import llmreq_mongo.integrations.httpx\n"
        "except ExtraMissing as exc:\n"
        "    print(exc.extra, '|', isinstance(exc, ImportError), '|', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(
        'httpx | True | llmreq_mongo.integrations.httpx needs the "httpx" extra'
    )
    assert 'pip install "llmreq-mongo[httpx]"' in out.stdout
