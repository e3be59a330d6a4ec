"""The anthropic SDK (an httpx2 client) through the same RecordingTransport class."""

# The SDK types its parameters as TypedDicts; plain dicts are passed, as callers do.
# mypy: disable-error-code="arg-type,call-overload"

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from capture_upstream import (
    ANTHROPIC_ERROR,
    ANTHROPIC_OUTPUT_TOKENS,
    ANTHROPIC_START_USAGE,
    TEXT,
    TOOL_ARGUMENTS,
    upstream_app,
)
from sdk_clients import CHAT, anthropic_over, received, records

from llmreq_mongo import InvalidInput, LLMClient, Recorder, TokenUsage
from llmreq_mongo.integrations.httpx import RecordingTransport

INPUT = 25 + 7 + 100
USAGE = TokenUsage(
    input_tokens=INPUT,
    output_tokens=ANTHROPIC_OUTPUT_TOKENS,
    total_tokens=INPUT + ANTHROPIC_OUTPUT_TOKENS,
    cache_read_input_tokens=100,
    cache_creation_input_tokens=7,
)
Call = Callable[[anthropic.AsyncAnthropic], Awaitable[Any]]


async def both_ways(recorder: Recorder, bot: LLMClient, call: Call) -> tuple[Any, Any]:
    """Make ``call`` bare and recorded; the SDK must read the same bytes and build the same."""
    results, bytes_read = [], []
    for recording in (False, True):
        inner = httpx2.ASGITransport(app=upstream_app())
        transport = (
            RecordingTransport(inner, recorder=recorder, llm_client=bot, session_key="ant")
            if recording
            else inner
        )
        async with anthropic_over(transport) as (llm, tee):
            try:
                results.append(await call(llm))
            except anthropic.APIError as exc:
                results.append(exc)
            bytes_read.append(received(tee))
    assert bytes_read[0] == bytes_read[1]
    bare, recorded = results
    if isinstance(bare, BaseException):
        assert type(recorded) is type(bare) and str(recorded) == str(bare)
    else:
        assert recorded == bare
    await recorder.flush()
    return recorded, bytes_read[1]


def test_one_class_is_a_transport_of_both_packages(recorder: Recorder, bot: LLMClient) -> None:
    transport = RecordingTransport(recorder=recorder, llm_client=bot)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    assert isinstance(transport, httpx2.AsyncBaseTransport)


async def test_json_answer(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: anthropic.AsyncAnthropic) -> Any:
        message = await llm.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=CHAT)
        return message.model_dump()

    _, [(_, _, body)] = await both_ways(recorder, bot, call)
    [doc] = await records()
    assert doc.session_key == "ant"
    assert doc.request == {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": CHAT}
    response = doc.response
    assert response is not None and response.status == 200 and not response.stream
    assert response.body == json.loads(body)
    assert response.usage == USAGE
    assert response.finish_reasons == ["end_turn"]


@pytest.mark.parametrize("scenario", ["answer", "tools", "thinking"])
async def test_stream(recorder: Recorder, bot: LLMClient, scenario: str) -> None:
    async def call(llm: anthropic.AsyncAnthropic) -> Any:
        async with llm.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=CHAT,
            extra_headers={"x-scenario": scenario},
        ) as stream:
            return (await stream.get_final_message()).model_dump()

    final, _ = await both_ways(recorder, bot, call)
    [doc] = await records()
    response = doc.response
    assert response is not None and response.stream and response.error is None
    assert response.usage == USAGE  # the cumulative count of message_delta, once
    assert response.ttft_ms is not None
    content = response.body["content"]
    assert [block["type"] for block in content] == [block["type"] for block in final["content"]]
    if scenario == "tools":
        assert [b["input"] for b in content] == [json.loads("".join(p)) for p in TOOL_ARGUMENTS]
        assert response.finish_reasons == ["tool_use"]
    else:
        assert content[-1]["text"] == TEXT


async def test_error_status(recorder: Recorder, bot: LLMClient) -> None:
    async def call(llm: anthropic.AsyncAnthropic) -> Any:
        return await llm.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=CHAT,
            extra_headers={"x-scenario": "error"},
        )

    raised, _ = await both_ways(recorder, bot, call)
    assert isinstance(raised, anthropic.APIStatusError) and raised.status_code == 529
    [doc] = await records()
    assert doc.response is not None and doc.response.status == 529
    assert doc.response.body == ANTHROPIC_ERROR
    assert doc.response.error == "overloaded_error: Overloaded"
    assert doc.response.usage is None


async def test_cut_stream_records_an_error_with_what_was_received(
    recorder: Recorder, bot: LLMClient
) -> None:
    async def call(llm: anthropic.AsyncAnthropic) -> Any:
        async with llm.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=CHAT,
            extra_headers={"x-scenario": "cut"},
        ) as stream:
            return "".join([text async for text in stream.text_stream])

    text, _ = await both_ways(recorder, bot, call)
    [doc] = await records()
    response = doc.response
    assert response is not None
    assert response.error is not None and "ended before message_stop" in response.error
    assert text and TEXT.startswith(text) and text != TEXT
    assert response.body["content"][0]["text"] == text
    # message_start's count is what was received; no final count came.
    assert response.usage is not None
    assert response.usage.output_tokens == ANTHROPIC_START_USAGE["output_tokens"]


async def test_an_httpx_transport_inside_an_httpx2_client_is_a_clear_error(
    recorder: Recorder, bot: LLMClient
) -> None:
    transport = RecordingTransport(
        httpx.ASGITransport(app=upstream_app()), recorder=recorder, llm_client=bot
    )
    async with httpx2.AsyncClient(transport=transport) as http:
        with pytest.raises(InvalidInput, match=r"httpx2\.AsyncHTTPTransport\(\)"):
            await http.post("http://upstream.test/v1/messages", json={})
    await recorder.flush()
    assert await records() == []
