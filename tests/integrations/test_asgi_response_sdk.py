"""LLMRequestLogger(capture="response") on the server side, with the official SDKs as clients.

The app that answers the LLM calls is the local upstream of the capture tests (it answers
as the APIs do, byte for byte), wrapped by the middleware, and served through
``httpx.ASGITransport`` or by uvicorn on a loopback port. Each call is made twice, to the
bare upstream and to the wrapped one: the SDK must read the same bytes from both, and the
wrapped one must leave exactly one record, with its response.
"""

# The SDKs type their parameters as TypedDicts; these tests pass plain dicts, as
# callers do, so mypy's argument checks against those TypedDicts are off here.
# mypy: disable-error-code="arg-type,call-overload"

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anthropic
import httpx
import httpx2
import openai
import pytest
from capture_tee import Tee2Transport, TeeTransport
from capture_upstream import (
    ANTHROPIC_OUTPUT_TOKENS,
    CHAT,
    CHAT_TOKENS,
    TEXT,
    TOOL_ARGUMENTS,
    TOOLS,
    upstream_app,
)

from llmreq_mongo import LLMClient, LLMClientRequest, Recorder
from llmreq_mongo._time import now_ms
from llmreq_mongo.integrations.asgi import ASGIApp, LLMRequestLogger

Serve = Callable[[ASGIApp], contextlib.AbstractAsyncContextManager[str]]

PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/messages"]

#: name: (x-scenario header, stream, stream_options.include_usage)
SCENARIOS: dict[str, tuple[str, bool, bool]] = {
    "json": ("answer", False, False),
    "stream-with-usage": ("answer", True, True),
    "stream-without-usage": ("answer", True, False),
    "tool-calls-streamed": ("tools", True, True),
    "error-status": ("error", False, False),
    "stream-cut": ("cut", True, True),
}


@contextlib.asynccontextmanager
async def openai_to(app: ASGIApp, via: str, served: Serve) -> AsyncIterator[tuple[Any, Any]]:
    """An AsyncOpenAI client that reaches ``app``, and the tee copying what it reads."""
    async with contextlib.AsyncExitStack() as stack:
        if via == "uvicorn":
            base = await stack.enter_async_context(served(app))
            tee = TeeTransport(httpx.AsyncHTTPTransport())
        else:
            base = "http://upstream.test"
            tee = TeeTransport(httpx.ASGITransport(app=app))
        http = await stack.enter_async_context(httpx.AsyncClient(transport=tee))
        client = openai.AsyncOpenAI(
            api_key="sk-test",
            base_url=f"{base}/v1",
            # openai 3.x still takes an httpx client, though it is typed for httpx2.
            http_client=cast(Any, http),
            max_retries=0,
        )
        yield client, tee


async def chat_call(client: openai.AsyncOpenAI, name: str) -> tuple[Any, str]:
    """Make the scenario's call as an application would; give what the SDK returned."""
    scenario, stream, include_usage = SCENARIOS[name]
    options: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": CHAT,
        "extra_headers": {"x-scenario": scenario, "x-session-key": "conv-1"},
    }
    if scenario == "tools":
        options["tools"] = TOOLS
    if include_usage:
        options["stream_options"] = {"include_usage": True}
    try:
        if not stream:
            return (await client.chat.completions.create(**options)).model_dump(), ""
        chunks = await client.chat.completions.create(stream=True, **options)
        got = [chunk.model_dump() async for chunk in chunks]
    except openai.APIStatusError as exc:
        return (type(exc), exc.status_code, exc.body), ""
    text = "".join(c["delta"].get("content") or "" for chunk in got for c in chunk["choices"])
    return got, text


def exchange_of(tee: Any) -> tuple[int, str | None, bytes]:
    (exchange,) = tee.exchanges
    return exchange.status, exchange.content_type, b"".join(exchange.chunks)


async def stored() -> list[LLMClientRequest]:
    return await LLMClientRequest.objects.order_by("created_at", "id").to_list()


@pytest.mark.parametrize("via", ["asgi", "uvicorn"])
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_openai_call_is_recorded_once_with_its_response_and_reads_the_same(
    recorder: Recorder, client: LLMClient, served: Serve, via: str, name: str
) -> None:
    async with openai_to(upstream_app(), via, served) as (sdk, tee):
        bare_result, bare_text = await chat_call(sdk, name)
        bare = exchange_of(tee)
    wrapped_app = LLMRequestLogger(
        upstream_app(), recorder=recorder, llm_client=client, paths=PATHS
    )
    before = now_ms()
    async with openai_to(wrapped_app, via, served) as (sdk, tee):
        result, text = await chat_call(sdk, name)
        status, content_type, raw = exchange_of(tee)
    after = now_ms()

    # What the client receives is byte-identical, and the SDK makes the same of it.
    assert (status, content_type, raw) == bare
    assert (result, text) == (bare_result, bare_text)

    await recorder.flush()
    (record,) = await stored()
    assert record.request["messages"] == CHAT and record.session_key == "conv-1"
    response = record.response
    assert response is not None
    assert response.status == status
    assert before <= record.created_at <= response.completed_at <= after
    assert record.updated_at == response.completed_at
    assert response.latency_ms >= 0
    scenario, stream, include_usage = SCENARIOS[name]
    assert response.stream is stream
    if stream:
        assert response.ttft_ms is not None and response.ttft_ms <= response.latency_ms
    else:
        assert response.ttft_ms is None

    if name == "error-status":
        error_type, error_status, error_body = result
        assert (error_type, error_status) == (openai.RateLimitError, 429)
        assert response.body == {"error": error_body}
        assert response.error == f"tokens: {error_body['message']}"
        assert response.usage is None
        return
    if name == "json":
        assert response.body == json.loads(raw)  # the body as the client received it
    message = response.body["choices"][0]["message"]
    if name == "stream-cut":
        # What was received is kept, and the record says the stream ended too soon.
        assert response.error is not None and "ended before" in response.error
        assert text and TEXT.startswith(text) and text != TEXT
        assert message["content"] == text
        assert response.usage is None and response.finish_reasons == []
        return
    assert response.error is None
    assert response.model == "gpt-4o-2024-08-06" and response.response_id == "chatcmpl-9x1"
    # Counted once (every chunk of the stream has a usage key; only the last has a count).
    assert response.usage == (CHAT_TOKENS if include_usage or not stream else None)
    if scenario == "tools":
        assert response.finish_reasons == ["tool_calls"]
        arguments = [c["function"]["arguments"] for c in message["tool_calls"]]
        assert arguments == ["".join(pieces) for pieces in TOOL_ARGUMENTS]
    else:
        assert response.finish_reasons == ["stop"]
        assert message["content"] == TEXT == (text or result["choices"][0]["message"]["content"])
    if name == "stream-without-usage":
        assert "usage" not in response.body


async def test_a_responses_api_stream_is_recorded_with_the_completed_response(
    recorder: Recorder, client: LLMClient, served: Serve
) -> None:
    app = LLMRequestLogger(upstream_app(), recorder=recorder, llm_client=client, paths=PATHS)
    async with openai_to(app, "uvicorn", served) as (sdk, _):
        stream = await sdk.responses.create(model="gpt-4.1", input="Capital?", stream=True)
        events = [event async for event in stream]
    completed = events[-1].response.model_dump(mode="json")
    await recorder.flush()
    (record,) = await stored()
    assert record.response is not None and record.response.error is None
    assert record.response.body["id"] == completed["id"] == record.response.response_id
    assert record.response.body["output"][0]["content"][0]["text"] == TEXT
    assert record.response.usage == CHAT_TOKENS.model_copy(
        update={"cache_creation_input_tokens": 5}
    )


@pytest.mark.parametrize("scenario", ["answer", "error"])
async def test_an_anthropic_stream_is_recorded_with_its_cumulative_usage(
    recorder: Recorder, client: LLMClient, scenario: str
) -> None:
    app = LLMRequestLogger(upstream_app(), recorder=recorder, llm_client=client, paths=PATHS)
    # The anthropic SDK takes an httpx2 client, which has the same ASGI transport.
    async with httpx2.AsyncClient(transport=Tee2Transport(httpx2.ASGITransport(app=app))) as h:
        sdk = anthropic.AsyncAnthropic(
            api_key="sk-ant-test", base_url="http://upstream.test", http_client=h, max_retries=0
        )
        options: dict[str, Any] = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "messages": CHAT,
            "extra_headers": {"x-scenario": scenario},
        }
        if scenario == "error":
            with pytest.raises(anthropic.APIStatusError) as raised:
                await sdk.messages.create(**options)
            assert raised.value.status_code == 529
        else:
            async with sdk.messages.stream(**options) as stream:
                final = await stream.get_final_message()
            assert final.usage.output_tokens == ANTHROPIC_OUTPUT_TOKENS
    await recorder.flush()
    (record,) = await stored()
    response = record.response
    assert response is not None
    if scenario == "error":
        assert response.status == 529 and response.error == "overloaded_error: Overloaded"
        assert response.usage is None
        return
    assert response.status == 200 and response.stream and response.error is None
    assert response.body["content"] == [{"type": "text", "text": TEXT}]
    # The message_delta count is cumulative: taken as it is, never added to message_start's.
    assert response.usage is not None
    assert response.usage.output_tokens == ANTHROPIC_OUTPUT_TOKENS
    assert response.usage.input_tokens == 25 + 7 + 100
    assert isinstance(record.created_at, dt.datetime)
