"""The openai SDK through a RecordingTransport: each call recorded once, the SDK unaffected."""

# The SDK types its parameters as TypedDicts; plain dicts are passed, as callers do.
# mypy: disable-error-code="arg-type,call-overload"

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from capture_upstream import CHAT_USAGE, OPENAI_ERROR, TEXT, TOOL_ARGUMENTS, upstream_app
from sdk_clients import CHAT, openai_over, received, records

from llmreq_mongo import LLMClient, Recorder, TokenUsage
from llmreq_mongo.integrations.httpx import RecordingTransport

USAGE = TokenUsage(
    input_tokens=CHAT_USAGE["prompt_tokens"],
    output_tokens=CHAT_USAGE["completion_tokens"],
    total_tokens=CHAT_USAGE["total_tokens"],
    cache_read_input_tokens=16,
    reasoning_output_tokens=4,
)
Call = Callable[[openai.AsyncOpenAI], Awaitable[Any]]


async def both_ways(recorder: Recorder, bot: LLMClient, call: Call) -> tuple[Any, Any]:
    """Make ``call`` bare and through the transport; the SDK must get the same bytes and result."""
    results = []
    bytes_read = []
    for recording in (False, True):
        inner = httpx.ASGITransport(app=upstream_app())
        transport = (
            RecordingTransport(inner, recorder=recorder, llm_client=bot) if recording else inner
        )
        async with openai_over(transport) as (llm, tee):
            try:
                results.append(await call(llm))
            except openai.APIError as exc:
                results.append(exc)
            bytes_read.append(received(tee))
    assert bytes_read[0] == bytes_read[1]  # byte-identical, status and headers too
    bare, recorded = results
    if isinstance(bare, BaseException):
        assert type(recorded) is type(bare) and str(recorded) == str(bare)
    else:
        assert recorded == bare
    await recorder.flush()
    return recorded, bytes_read[1]


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


async def test_json_answer(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        completion = await llm.chat.completions.create(
            model="gpt-4o", messages=CHAT, extra_headers={"X-Session-Key": "s-json"}
        )
        return completion.model_dump()

    _, [(_, _, body)] = await both_ways(recorder, bot, call)
    [doc] = await records()
    assert doc.request == {"model": "gpt-4o", "messages": CHAT}
    assert doc.session_key == "s-json"
    response = doc.response
    assert response is not None
    assert (response.status, response.stream, response.error) == (200, False, None)
    assert response.body == json.loads(body)  # the answer the SDK received
    assert response.model == "gpt-4o-2024-08-06" and response.response_id == "chatcmpl-9x1"
    assert response.finish_reasons == ["stop"]
    assert response.usage == USAGE
    assert response.ttft_ms is None and response.latency_ms > 0
    assert doc.created_at <= response.completed_at


async def test_stream_with_usage_counts_it_once(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        stream = await llm.chat.completions.create(
            model="gpt-4o", messages=CHAT, stream=True, stream_options={"include_usage": True}
        )
        return [c.model_dump() for c in await collect(stream)]

    chunks, _ = await both_ways(recorder, bot, call)
    [doc] = await records()
    response = doc.response
    assert response is not None and response.stream and response.error is None
    assert response.body["choices"][0]["message"]["content"] == TEXT
    assert response.usage == USAGE  # from the final usage chunk, never summed
    assert chunks[-1]["usage"]["prompt_tokens"] == USAGE.input_tokens
    assert response.ttft_ms is not None and response.ttft_ms <= response.latency_ms
    assert doc.request["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_keeps_usage_none(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        stream = await llm.chat.completions.create(model="gpt-4o", messages=CHAT, stream=True)
        return [c.model_dump() for c in await collect(stream)]

    await both_ways(recorder, bot, call)
    [doc] = await records()
    assert doc.response is not None
    assert doc.response.usage is None  # nothing reported: None, never 0
    assert doc.response.body["choices"][0]["message"]["content"] == TEXT
    assert doc.response.error is None


async def test_tool_calls_streamed_in_pieces(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        stream = await llm.chat.completions.create(
            model="gpt-4o",
            messages=CHAT,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-scenario": "tools"},
        )
        return [c.model_dump() for c in await collect(stream)]

    await both_ways(recorder, bot, call)
    [doc] = await records()
    assert doc.response is not None
    message = doc.response.body["choices"][0]["message"]
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == [
        "".join(pieces) for pieces in TOOL_ARGUMENTS
    ]
    assert [c["id"] for c in message["tool_calls"]] == ["call_a1", "call_b2"]
    assert doc.response.finish_reasons == ["tool_calls"]
    assert doc.response.usage == USAGE


async def test_error_status(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        return await llm.chat.completions.create(
            model="gpt-4o", messages=CHAT, extra_headers={"x-scenario": "error"}
        )

    raised, _ = await both_ways(recorder, bot, call)
    assert isinstance(raised, openai.RateLimitError)
    [doc] = await records()
    response = doc.response
    assert response is not None and response.status == 429
    assert response.body == OPENAI_ERROR
    assert response.error == f"tokens: {OPENAI_ERROR['error']['message']}"
    assert response.usage is None


async def test_cut_stream_records_an_error_with_what_was_received(
    recorder: Recorder, bot: LLMClient
) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        stream = await llm.chat.completions.create(
            model="gpt-4o",
            messages=CHAT,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-scenario": "cut"},
        )
        return "".join(c.choices[0].delta.content or "" for c in await collect(stream))

    text, _ = await both_ways(recorder, bot, call)
    [doc] = await records()
    response = doc.response
    assert response is not None
    assert response.error is not None and "ended before its final [DONE]" in response.error
    assert text and TEXT.startswith(text) and text != TEXT
    assert response.body["choices"][0]["message"]["content"] == text
    assert response.usage is None


async def test_responses_api_json_and_stream(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        answer = await llm.responses.create(model="gpt-4.1", input="Capital of France?")
        stream = await llm.responses.create(model="gpt-4.1", input="Again?", stream=True)
        events = [e.type for e in await collect(stream)]
        return answer.model_dump(), events

    (_, events), [(_, _, body), _] = await both_ways(recorder, bot, call)
    first, second = await records()
    assert first.response is not None and second.response is not None
    assert first.response.body == json.loads(body) and not first.response.stream
    assert second.response.stream and events[-1] == "response.completed"
    assert second.response.body["output"] == first.response.body["output"]
    assert first.response.usage == second.response.usage
    assert first.response.usage is not None and first.response.usage.input_tokens == 31


async def test_each_call_is_recorded_once_and_stop_loses_none(bot: LLMClient) -> None:
    async with Recorder(flush_interval=0.01) as recorder:
        transport = RecordingTransport(
            httpx.ASGITransport(app=upstream_app()), recorder=recorder, llm_client=bot
        )
        async with openai_over(transport) as (llm, _):
            for n in range(5):
                stream = await llm.chat.completions.create(
                    model="gpt-4o",
                    messages=CHAT,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers={"X-Session-Key": f"s{n}"},
                )
                await collect(stream)
    docs = await records()
    assert sorted(d.session_key or "" for d in docs) == [f"s{n}" for n in range(5)]
    assert all(d.response is not None and d.response.usage == USAGE for d in docs)
    assert transport.stats.seen == transport.stats.recorded == 5


@pytest.mark.parametrize("scenario", ["answer", "tools"])
async def test_non_streamed_tool_calls(recorder: Recorder, bot: LLMClient, scenario: str) -> None:
    async def call(llm: openai.AsyncOpenAI) -> Any:
        completion = await llm.chat.completions.create(
            model="gpt-4o", messages=CHAT, extra_headers={"x-scenario": scenario}
        )
        return completion.model_dump()

    _, [(_, _, body)] = await both_ways(recorder, bot, call)
    [doc] = await records()
    assert doc.response is not None and doc.response.body == json.loads(body)
