"""The parser against the official SDKs: the bytes an SDK read, fed to ResponseParser,
give the body the SDK's own accumulator builds, and the usage it reports, counted once."""

# The SDKs type their parameters as TypedDicts; these tests pass plain dicts, as
# callers do, so mypy's argument checks against those TypedDicts are off here.
# mypy: disable-error-code="arg-type,call-overload"

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from capture_tee import Exchange
from capture_upstream import (
    ANTHROPIC_OUTPUT_TOKENS,
    ANTHROPIC_START_USAGE,
    CHAT,
    CHAT_TOKENS,
    TEXT,
    TEXT_PIECES,
    TOOLS,
)

from llmreq_mongo._capture import LLMResponse, ResponseParser, TokenUsage

RESPONSES_USAGE = CHAT_TOKENS.model_copy(update={"cache_creation_input_tokens": 5})
ANTHROPIC_INPUT = 25 + 7 + 100
ANTHROPIC_USAGE = TokenUsage(
    input_tokens=ANTHROPIC_INPUT,
    output_tokens=ANTHROPIC_OUTPUT_TOKENS,
    total_tokens=ANTHROPIC_INPUT + ANTHROPIC_OUTPUT_TOKENS,
    cache_read_input_tokens=100,
    cache_creation_input_tokens=7,
)
# Fields the SDKs add to their own objects that no API response carries.
_SDK_ONLY = {"parsed", "parsed_output", "parsed_arguments"}


def parse(exchange: Exchange, *, size: int | None = None) -> LLMResponse:
    """Feed what the SDK read to a parser, as it came or re-cut into ``size``-byte chunks."""
    parser = ResponseParser(exchange.path, exchange.content_type)
    raw = b"".join(exchange.chunks)
    chunks = (
        exchange.chunks if size is None else [raw[i : i + size] for i in range(0, len(raw), size)]
    )
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish(status=exchange.status)


def plain(value: Any) -> Any:
    """JSON with None members left out and SDK-only fields removed, for comparing."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    value = json.loads(json.dumps(value))

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: clean(v) for k, v in item.items() if v is not None and k not in _SDK_ONLY}
        if isinstance(item, list):
            return [clean(v) for v in item]
        return item

    return clean(value)


def assert_same_response(exchange: Exchange, sdk_body: Any) -> LLMResponse:
    response = parse(exchange)
    assert response.error is None
    assert plain(response.body) == plain(sdk_body)
    # Cut anywhere (inside UTF-8 sequences, between \r and \n), the result is the same.
    for size in (1, 7, 64):
        again = parse(exchange, size=size)
        assert again.body == response.body
        assert again.usage == response.usage
    return response


# --- OpenAI chat completions -----------------------------------------------------


async def test_chat_json_answer(openai_client: openai.AsyncOpenAI, tee: Any) -> None:
    completion = await openai_client.chat.completions.create(model="gpt-4o", messages=CHAT)
    response = assert_same_response(tee.exchanges[-1], completion)
    assert response.stream is False and response.ttft_ms is None
    assert response.status == 200
    assert response.usage == CHAT_TOKENS
    assert response.model == completion.model
    assert response.response_id == completion.id
    assert response.finish_reasons == ["stop"]


@pytest.mark.parametrize("scenario", ["answer", "tools"])
async def test_chat_stream_with_usage(
    openai_client: openai.AsyncOpenAI, tee: Any, scenario: str
) -> None:
    async with openai_client.chat.completions.stream(
        model="gpt-4o",
        messages=CHAT,
        tools=TOOLS,
        stream_options={"include_usage": True},
        extra_headers={"x-scenario": scenario},
    ) as stream:
        final = await stream.get_final_completion()
    response = assert_same_response(tee.exchanges[-1], _without_tool_index(final))
    assert response.stream is True and response.ttft_ms is not None
    # Counted once, from the final usage chunk: exactly what the SDK reports.
    assert response.usage == CHAT_TOKENS
    assert final.usage is not None and final.usage.prompt_tokens == response.usage.input_tokens
    assert plain(response.body["usage"]) == plain(final.usage)
    assert response.finish_reasons == ["tool_calls" if scenario == "tools" else "stop"]
    message = response.body["choices"][0]["message"]
    if scenario == "tools":
        calls = message["tool_calls"]
        assert [c["id"] for c in calls] == ["call_a1", "call_b2"]
        assert [json.loads(c["function"]["arguments"]) for c in calls] == [
            {"city": "Paris", "unit": "c"},
            {"city": "Lyon"},
        ]
        assert "index" not in calls[0]
    else:
        assert message["content"] == TEXT


async def test_chat_stream_without_usage_keeps_usage_none(
    openai_client: openai.AsyncOpenAI, tee: Any
) -> None:
    async with openai_client.chat.completions.stream(model="gpt-4o", messages=CHAT) as stream:
        final = await stream.get_final_completion()
    assert final.usage is None
    response = assert_same_response(tee.exchanges[-1], final)
    assert response.usage is None
    assert "usage" not in response.body


async def test_chat_error_status(openai_client: openai.AsyncOpenAI, tee: Any) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        await openai_client.chat.completions.create(
            model="gpt-4o", messages=CHAT, extra_headers={"x-scenario": "error"}
        )
    response = parse(tee.exchanges[-1])
    assert response.status == 429
    assert response.body == {"error": raised.value.body}
    assert response.error == f"tokens: {raised.value.body['message']}"  # type: ignore[index]
    assert response.usage is None


async def test_chat_cut_stream(openai_client: openai.AsyncOpenAI, tee: Any) -> None:
    received = ""
    stream = await openai_client.chat.completions.create(
        model="gpt-4o",
        messages=CHAT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-scenario": "cut"},
    )
    # The SDK ends the iteration without a word; the parser says what happened.
    async for chunk in stream:
        received += "".join(c.delta.content or "" for c in chunk.choices)
    response = parse(tee.exchanges[-1])
    assert response.error is not None and "ended before" in response.error
    assert received and TEXT.startswith(received) and received != TEXT
    assert response.body["choices"][0]["message"]["content"] == received
    assert response.usage is None
    assert response.finish_reasons == []


def _without_tool_index(completion: Any) -> Any:
    # The SDK keeps each streamed tool call's ``index``; a non-streamed body has none.
    data = completion.model_dump(mode="json")
    for choice in data["choices"]:
        for call in choice["message"].get("tool_calls") or []:
            call.pop("index", None)
    return data


# --- OpenAI Responses API --------------------------------------------------------


async def test_responses_json_answer(openai_client: openai.AsyncOpenAI, tee: Any) -> None:
    result = await openai_client.responses.create(model="gpt-4.1", input="Capital of France?")
    response = assert_same_response(tee.exchanges[-1], result)
    assert response.usage == RESPONSES_USAGE
    assert response.finish_reasons == ["completed"]
    assert response.response_id == result.id and response.model == result.model


@pytest.mark.parametrize("scenario", ["answer", "tools"])
async def test_responses_stream(openai_client: openai.AsyncOpenAI, tee: Any, scenario: str) -> None:
    async with openai_client.responses.stream(
        model="gpt-4.1", input="Capital of France?", extra_headers={"x-scenario": scenario}
    ) as stream:
        final = await stream.get_final_response()
    response = assert_same_response(tee.exchanges[-1], final)
    assert response.stream is True
    assert response.usage == RESPONSES_USAGE
    assert response.usage.input_tokens == final.usage.input_tokens  # type: ignore[union-attr]
    if scenario == "answer":
        assert final.output_text == TEXT
        assert response.body["output"][0]["content"][0]["text"] == TEXT


async def test_responses_error_status(openai_client: openai.AsyncOpenAI, tee: Any) -> None:
    with pytest.raises(openai.RateLimitError):
        await openai_client.responses.create(
            model="gpt-4.1", input="hi", extra_headers={"x-scenario": "error"}
        )
    response = parse(tee.exchanges[-1])
    assert response.status == 429
    assert response.error is not None and response.error.startswith("tokens: Rate limit")


async def test_responses_cut_stream(openai_client: openai.AsyncOpenAI, tee: Any) -> None:
    deltas: list[str] = []
    async with openai_client.responses.stream(
        model="gpt-4.1", input="hi", extra_headers={"x-scenario": "cut"}
    ) as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            await stream.get_final_response()
    response = parse(tee.exchanges[-1])
    assert response.error is not None and "ended before" in response.error
    received = "".join(deltas)
    assert received and TEXT.startswith(received) and received != TEXT
    assert response.body["output"][0]["content"][0]["text"] == received
    assert response.usage is None
    assert response.response_id == "resp_68c1"


# --- Anthropic Messages ----------------------------------------------------------


async def test_messages_json_answer(anthropic_client: anthropic.AsyncAnthropic, tee2: Any) -> None:
    message = await anthropic_client.messages.create(
        model="claude-sonnet-4-5", max_tokens=256, messages=CHAT
    )
    response = assert_same_response(tee2.exchanges[-1], message)
    assert response.usage == ANTHROPIC_USAGE
    assert response.finish_reasons == ["end_turn"]
    assert response.response_id == message.id and response.model == message.model


@pytest.mark.parametrize("scenario", ["answer", "tools", "thinking"])
async def test_messages_stream(
    anthropic_client: anthropic.AsyncAnthropic, tee2: Any, scenario: str
) -> None:
    async with anthropic_client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=CHAT,
        extra_headers={"x-scenario": scenario},
    ) as stream:
        final = await stream.get_final_message()
    response = assert_same_response(tee2.exchanges[-1], final)
    assert response.stream is True
    # output_tokens from message_delta, input and cache counts from message_start: once each.
    assert response.usage == ANTHROPIC_USAGE
    assert final.usage.output_tokens == ANTHROPIC_OUTPUT_TOKENS
    assert final.usage.input_tokens == ANTHROPIC_START_USAGE["input_tokens"]
    if scenario == "tools":
        assert response.finish_reasons == ["tool_use"]
        assert [block["input"] for block in response.body["content"]] == [
            {"city": "Paris", "unit": "c"},
            {"city": "Lyon"},
        ]
    elif scenario == "thinking":
        thinking = response.body["content"][0]
        assert thinking["thinking"] == "Paris is the capital."
        assert thinking["signature"] == "EqQBCgIYAhIM"


async def test_messages_error_status(anthropic_client: anthropic.AsyncAnthropic, tee2: Any) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        await anthropic_client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=256,
            messages=CHAT,
            extra_headers={"x-scenario": "error"},
        )
    assert raised.value.status_code == 529
    response = parse(tee2.exchanges[-1])
    assert response.status == 529
    assert response.error == "overloaded_error: Overloaded"
    assert response.usage is None


async def test_messages_cut_stream(anthropic_client: anthropic.AsyncAnthropic, tee2: Any) -> None:
    pieces: list[str] = []
    async with anthropic_client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=CHAT,
        extra_headers={"x-scenario": "cut"},
    ) as stream:
        async for text in stream.text_stream:
            pieces.append(text)
        snapshot = stream.current_message_snapshot
    response = parse(tee2.exchanges[-1])
    assert response.error is not None and "ended before message_stop" in response.error
    received = "".join(pieces)
    assert received and TEXT.startswith(received) and received != TEXT
    assert plain(response.body) == plain(snapshot)
    # What message_start reported is kept; no output count beyond it was received.
    assert response.usage is not None
    assert response.usage.output_tokens == ANTHROPIC_START_USAGE["output_tokens"]
    assert response.finish_reasons == []
    assert TEXT_PIECES[0] in received
