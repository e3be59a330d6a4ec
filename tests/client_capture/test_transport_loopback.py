"""Over real sockets: uvicorn on 127.0.0.1 and the default transports of httpx and httpx2."""

# The SDKs type their parameters as TypedDicts; plain dicts are passed, as callers do.
# mypy: disable-error-code="arg-type,call-overload"

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from capture_upstream import CHAT_USAGE, TEXT, upstream_app
from sdk_clients import (
    CHAT,
    anthropic_over,
    dropping_app,
    free_port,
    openai_over,
    paced_app,
    received,
    records,
    serving,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llmreq_mongo import LLMClient, Recorder
from llmreq_mongo._capture import PARSE_BATCH
from llmreq_mongo.integrations.httpx import RecordingTransport


async def test_openai_and_anthropic_streams_over_loopback(
    recorder: Recorder, bot: LLMClient
) -> None:
    async with serving(upstream_app()) as url:
        bytes_read = []
        for recording in (False, True):

            def make(bare: Any, recording: bool = recording) -> Any:
                # Recorded: the transport's own default, the client's package's.
                return RecordingTransport(recorder=recorder, llm_client=bot) if recording else bare

            async with openai_over(make(httpx.AsyncHTTPTransport()), url) as (llm, tee):
                stream = await llm.chat.completions.create(
                    model="gpt-4o",
                    messages=CHAT,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers={"X-Session-Key": "loop"},
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )
                assert text == TEXT
                # Bodies alone: a real server's headers carry the date.
                bytes_read.append([body for _, _, body in received(tee)])
            async with anthropic_over(make(httpx2.AsyncHTTPTransport()), url) as (ant, tee2):
                async with ant.messages.stream(
                    model="claude-sonnet-4-5",
                    max_tokens=64,
                    messages=CHAT,
                    extra_headers={"X-Session-Key": "loop"},
                ) as events:
                    final = await events.get_final_message()
                assert final.content[0].text == TEXT  # type: ignore[union-attr]
                bytes_read.append([body for _, _, body in received(tee2)])
        assert bytes_read[0:2] == bytes_read[2:4]
    await recorder.flush()
    chat, messages = await records()
    assert chat.session_key == messages.session_key == "loop"
    assert chat.response is not None and messages.response is not None
    assert chat.response.usage is not None
    assert chat.response.usage.input_tokens == CHAT_USAGE["prompt_tokens"]
    assert messages.response.usage is not None and messages.response.usage.output_tokens == 57
    for doc in (chat, messages):
        assert doc.response is not None and doc.response.stream
        assert doc.response.ttft_ms is not None and doc.response.error is None


async def test_a_stream_closed_early_records_what_was_read(
    recorder: Recorder, bot: LLMClient
) -> None:
    async with serving(paced_app()) as url:
        transport = RecordingTransport(recorder=recorder, llm_client=bot)
        async with openai_over(transport, url) as (llm, _):
            stream = await llm.chat.completions.create(model="gpt-4o", messages=CHAT, stream=True)
            assert isinstance(stream, openai.AsyncStream)
            first = []
            async for chunk in stream:
                first.append(chunk)
                if len(first) == 3:
                    break
            await stream.close()
    await recorder.flush()
    [doc] = await records()
    response = doc.response
    assert response is not None and response.error is not None
    assert "ended before its final [DONE]" in response.error
    kept = response.body["choices"][0]["message"]["content"]
    yielded = "".join(c.choices[0].delta.content or "" for c in first)
    assert yielded and kept.startswith(yielded)  # what was read, no more than was sent
    assert TEXT.startswith(kept) and kept != TEXT
    assert response.usage is None


class Spy(httpx.AsyncHTTPTransport):
    """The default transport, keeping the exception it raised."""

    raised: BaseException | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except BaseException as exc:
            self.raised = exc
            raise


async def test_a_failed_connection_is_recorded_and_the_same_exception_goes_on(
    recorder: Recorder, bot: LLMClient
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spy = Spy()
    transport = RecordingTransport(spy, recorder=recorder, llm_client=bot, session_key="down")
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.post(f"{url}/v1/chat/completions", json={"model": "gpt-4o"})
    assert caught.value is spy.raised  # the same object, not a copy
    raised: list[BaseException] = []
    for inner in (
        httpx.AsyncHTTPTransport(),
        RecordingTransport(recorder=recorder, llm_client=bot),
    ):
        async with openai_over(inner, url) as (llm, _):
            with pytest.raises(openai.APIConnectionError) as sdk_error:
                await llm.chat.completions.create(model="gpt-4o", messages=CHAT)
            raised.append(sdk_error.value)
    assert type(raised[0].__cause__) is type(raised[1].__cause__) is httpx.ConnectError
    for inner2 in (
        httpx2.AsyncHTTPTransport(),
        RecordingTransport(recorder=recorder, llm_client=bot),
    ):
        async with anthropic_over(inner2, url) as (claude, _):
            with pytest.raises(anthropic.APIConnectionError) as claude_error:
                await claude.messages.create(model="claude", max_tokens=8, messages=CHAT)
            raised.append(claude_error.value)
    assert type(raised[2].__cause__) is type(raised[3].__cause__) is httpx2.ConnectError
    await recorder.flush()
    first, second, third = await records()
    assert first.session_key == "down" and first.request == {"model": "gpt-4o"}
    assert third.request["model"] == "claude"
    for doc, package in ((first, "httpx"), (second, "httpx"), (third, "httpx2")):
        response = doc.response
        assert response is not None and response.status is None and response.body is None
        assert response.error is not None
        assert response.error.startswith(f"{package}.ConnectError: ")


async def test_a_connection_dropped_mid_stream_records_an_error_with_what_was_read(
    recorder: Recorder, bot: LLMClient
) -> None:
    errors: list[BaseException] = []
    pieces: list[list[str]] = []
    async with serving(dropping_app()) as url:
        for inner in (
            httpx2.AsyncHTTPTransport(),
            RecordingTransport(recorder=recorder, llm_client=bot),
        ):
            got: list[str] = []

            async def read(llm: Any, got: list[str] = got) -> None:
                async with llm.messages.stream(
                    model="claude-sonnet-4-5", max_tokens=64, messages=CHAT
                ) as stream:
                    async for text in stream.text_stream:
                        got.append(text)

            async with anthropic_over(inner, url) as (llm, _):
                with pytest.raises(httpx2.RemoteProtocolError) as caught:
                    await read(llm)
            errors.append(caught.value)
            pieces.append(got)
    # The SDK sees what it sees without the transport.
    assert str(errors[0]) == str(errors[1])
    assert pieces[0] == pieces[1] and pieces[1]
    await recorder.flush()
    [doc] = await records()
    response = doc.response
    assert response is not None and response.status == 200
    assert response.error is not None and type(errors[1]).__name__ in response.error
    assert response.body["content"][0]["text"] == "".join(pieces[1])


async def test_time_to_first_token_is_when_the_chunk_came_not_when_it_was_read(
    recorder: Recorder, bot: LLMClient
) -> None:
    async with serving(paced_app()) as url:
        transport = RecordingTransport(recorder=recorder, llm_client=bot)
        async with httpx.AsyncClient(transport=transport) as http:
            started = time.perf_counter()
            async with http.stream(
                "POST", f"{url}/v1/chat/completions", json={"stream": True}
            ) as response:
                first_seen: float | None = None
                async for _ in response.aiter_raw():
                    if first_seen is None:
                        first_seen = (time.perf_counter() - started) * 1000
                        await asyncio.sleep(0.2)  # the client is slow to read on
    await recorder.flush()
    [doc] = await records()
    assert doc.response is not None and doc.response.ttft_ms is not None
    assert first_seen is not None
    # The transport's clock starts after the client's, and the chunk is
    # marked before the client sees it.
    assert doc.response.ttft_ms <= first_seen
    assert doc.response.error is None and doc.response.usage is not None


def long_chat_app(pieces: list[str]) -> Starlette:
    """An upstream whose chat stream sends one event per piece, each on its own, then usage."""

    def event(data: Any) -> bytes:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-long",
            "object": "chat.completion.chunk",
            "created": 1764590000,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }

    async def chat(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield event(chunk({"role": "assistant", "content": ""}))
            for piece in pieces:
                yield event(chunk({"content": piece}))
            yield event(chunk({}, "stop"))
            usage = {"prompt_tokens": 9, "completion_tokens": len(pieces), "total_tokens": 9}
            yield event({**chunk({}), "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_a_stream_longer_than_a_parse_batch_is_recorded_whole(
    recorder: Recorder, bot: LLMClient
) -> None:
    # About 200 KB in 600 events: the parser is fed the first chunk, then batches.
    pieces = [f"piece {n:04d} — «ok» " * 12 for n in range(600)]
    assert sum(len(piece.encode()) for piece in pieces) > 2 * PARSE_BATCH
    async with serving(long_chat_app(pieces)) as url:
        transport = RecordingTransport(recorder=recorder, llm_client=bot)
        async with openai_over(transport, url) as (llm, _):
            stream = await llm.chat.completions.create(
                model="gpt-4o", messages=CHAT, stream=True, extra_headers={"X-Session-Key": "long"}
            )
            assert isinstance(stream, openai.AsyncStream)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "".join(pieces)
    await recorder.flush()
    [doc] = await records()
    response = doc.response
    assert response is not None and response.error is None and not response.truncated
    assert response.body["choices"][0]["message"]["content"] == text
    assert response.finish_reasons == ["stop"]
    assert response.usage is not None and response.usage.output_tokens == len(pieces)
