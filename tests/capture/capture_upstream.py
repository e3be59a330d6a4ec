"""A local upstream that answers as the OpenAI and Anthropic APIs do, byte for byte.

Routes: ``POST /v1/chat/completions``, ``/v1/responses`` and ``/v1/messages``.
``stream`` in the request body chooses a JSON answer or an event stream; for
chat completions, ``stream_options.include_usage`` adds the final usage
chunk. The ``x-scenario`` request header chooses the answer:

- ``answer`` (the default): a short text answer;
- ``tools``: two tool calls, their arguments streamed in pieces;
- ``thinking`` (Messages only): a thinking block, then the answer;
- ``error``: an error status with the API's error body;
- ``cut``: a stream that stops in the middle (no terminal event).

The content is fixed, so a test knows what the client must end up with.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmreq_mongo._capture import TokenUsage

CREATED = 1764590000
TEXT_PIECES = ["The capital", " of France", " is Paris", " — «Paris».", " 🗼"]
TEXT = "".join(TEXT_PIECES)
TOOL_ARGUMENTS = [
    ('{"city": "Par', 'is", "unit": "c"}'),
    ('{"city"', ': "Lyon"}'),
]
CHAT_USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 12,
    "total_tokens": 43,
    "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 4,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
#: The chat request the SDK tests send, and the tool some of them offer.
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
#: CHAT_USAGE as the capture reads it.
CHAT_TOKENS = TokenUsage(
    input_tokens=31,
    output_tokens=12,
    total_tokens=43,
    cache_read_input_tokens=16,
    reasoning_output_tokens=4,
)
RESPONSES_USAGE = {
    "input_tokens": 31,
    "input_tokens_details": {"cached_tokens": 16, "cache_write_tokens": 5},
    "output_tokens": 12,
    "output_tokens_details": {"reasoning_tokens": 4},
    "total_tokens": 43,
}
ANTHROPIC_START_USAGE = {
    "input_tokens": 25,
    "cache_creation_input_tokens": 7,
    "cache_read_input_tokens": 100,
    "output_tokens": 1,
    "service_tier": "standard",
}
ANTHROPIC_OUTPUT_TOKENS = 57


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {text}\n\n".encode()


def _stream(chunks: Iterator[bytes]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8")


def _cut(chunks: list[bytes]) -> Iterator[bytes]:
    # Half the events, and the next one cut inside its JSON.
    half = len(chunks) // 2
    yield from chunks[:half]
    yield chunks[half][: len(chunks[half]) // 2]


# --- OpenAI chat completions -------------------------------------------------------


def _chat_chunk(choices: list[Any], *, usage: bool, usage_value: Any = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-9x1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "gpt-4o-2024-08-06",
        "service_tier": "default",
        "system_fingerprint": "fp_7f2b",
        "choices": choices,
    }
    if usage:
        chunk["usage"] = usage_value
    chunk["obfuscation"] = "Zk3"
    return chunk


def _chat_deltas(scenario: str) -> tuple[list[dict[str, Any]], str]:
    if scenario == "tools":
        deltas: list[dict[str, Any]] = [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
                "refusal": None,
            }
        ]
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            for piece in TOOL_ARGUMENTS[0]
        ]
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        )
        deltas += [
            {"tool_calls": [{"index": 1, "function": {"arguments": piece}}]}
            for piece in TOOL_ARGUMENTS[1]
        ]
        return deltas, "tool_calls"
    deltas = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": piece} for piece in TEXT_PIECES]
    return deltas, "stop"


def chat_stream_chunks(scenario: str, *, include_usage: bool) -> list[bytes]:
    """The events of a streamed chat completion, as OpenAI sends them."""
    deltas, reason = _chat_deltas(scenario)
    chunks = [
        _sse(
            _chat_chunk(
                [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
                usage=include_usage,
            )
        )
        for delta in deltas
    ]
    chunks.append(
        _sse(
            _chat_chunk(
                [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}],
                usage=include_usage,
            )
        )
    )
    if include_usage:
        chunks.append(_sse(_chat_chunk([], usage=True, usage_value=CHAT_USAGE)))
    chunks.append(_sse("[DONE]"))
    return chunks


def chat_json(scenario: str) -> dict[str, Any]:
    """A non-streamed chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": TEXT, "refusal": None}
    reason = "stop"
    if scenario == "tools":
        reason = "tool_calls"
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{n}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "".join(pieces)},
            }
            for n, pieces in enumerate(TOOL_ARGUMENTS)
        ]
    message["annotations"] = []
    return {
        "id": "chatcmpl-9x1",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
        "usage": CHAT_USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_7f2b",
    }


OPENAI_ERROR = {
    "error": {
        "message": "Rate limit reached for gpt-4o in organization org-x on tokens per min.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


async def chat_completions(request: Request) -> Response:
    payload = await request.json()
    scenario = request.headers.get("x-scenario", "answer")
    if scenario == "error":
        return JSONResponse(OPENAI_ERROR, status_code=429)
    if not payload.get("stream"):
        return JSONResponse(chat_json(scenario))
    include = bool((payload.get("stream_options") or {}).get("include_usage"))
    chunks = chat_stream_chunks(scenario, include_usage=include)
    return _stream(_cut(chunks) if scenario == "cut" else iter(chunks))


# --- OpenAI Responses API ----------------------------------------------------------


def _response(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_68c1",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4.1-2025-04-14",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message_item(text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    return {
        "id": "msg_68c1",
        "type": "message",
        "status": status,
        "content": content if status == "completed" else [],
        "role": "assistant",
    }


def _call_item(n: int, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": f"fc_{n}",
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": f"call_{n}",
        "name": "get_weather",
    }


def responses_stream_events(scenario: str) -> list[bytes]:
    """The events of a streamed response, as OpenAI sends them."""
    events: list[tuple[str, dict[str, Any]]] = []
    events.append(("response.created", {"response": _response("in_progress", [], None)}))
    events.append(("response.in_progress", {"response": _response("in_progress", [], None)}))
    final_output: list[Any] = []
    if scenario == "tools":
        for n, pieces in enumerate(TOOL_ARGUMENTS):
            events.append(
                (
                    "response.output_item.added",
                    {"output_index": n, "item": _call_item(n, "", "in_progress")},
                )
            )
            for piece in pieces:
                events.append(
                    (
                        "response.function_call_arguments.delta",
                        {"item_id": f"fc_{n}", "output_index": n, "delta": piece},
                    )
                )
            arguments = "".join(pieces)
            events.append(
                (
                    "response.function_call_arguments.done",
                    {"item_id": f"fc_{n}", "output_index": n, "arguments": arguments},
                )
            )
            done = _call_item(n, arguments, "completed")
            events.append(("response.output_item.done", {"output_index": n, "item": done}))
            final_output.append(done)
    else:
        where = {"item_id": "msg_68c1", "output_index": 0, "content_index": 0}
        empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        events.append(
            (
                "response.output_item.added",
                {"output_index": 0, "item": _message_item("", "in_progress")},
            )
        )
        events.append(("response.content_part.added", {**where, "part": empty_part}))
        for piece in TEXT_PIECES:
            events.append(("response.output_text.delta", {**where, "delta": piece, "logprobs": []}))
        events.append(("response.output_text.done", {**where, "text": TEXT, "logprobs": []}))
        part = {**empty_part, "text": TEXT}
        events.append(("response.content_part.done", {**where, "part": part}))
        done = _message_item(TEXT, "completed")
        events.append(("response.output_item.done", {"output_index": 0, "item": done}))
        final_output.append(done)
    events.append(
        ("response.completed", {"response": _response("completed", final_output, RESPONSES_USAGE)})
    )
    return [
        _sse({"type": kind, "sequence_number": n, **data}, event=kind)
        for n, (kind, data) in enumerate(events)
    ]


def responses_json(scenario: str) -> dict[str, Any]:
    """A non-streamed response object."""
    if scenario == "tools":
        output = [_call_item(n, "".join(p), "completed") for n, p in enumerate(TOOL_ARGUMENTS)]
    else:
        output = [_message_item(TEXT, "completed")]
    return _response("completed", output, RESPONSES_USAGE)


async def responses(request: Request) -> Response:
    payload = await request.json()
    scenario = request.headers.get("x-scenario", "answer")
    if scenario == "error":
        return JSONResponse(OPENAI_ERROR, status_code=429)
    if not payload.get("stream"):
        return JSONResponse(responses_json(scenario))
    events = responses_stream_events(scenario)
    return _stream(_cut(events) if scenario == "cut" else iter(events))


# --- Anthropic Messages ------------------------------------------------------------


def _message(content: list[Any], stop_reason: str | None, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def messages_stream_events(scenario: str) -> list[bytes]:
    """The events of a streamed message, as Anthropic sends them."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": _message([], None, dict(ANTHROPIC_START_USAGE))}),
        ("ping", {}),
    ]
    index = 0
    stop_reason = "end_turn"
    if scenario == "thinking":
        events.append(
            (
                "content_block_start",
                {
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            )
        )
        for piece in ("Paris is the", " capital."):
            events.append(
                (
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "thinking_delta", "thinking": piece}},
                )
            )
        events.append(
            (
                "content_block_delta",
                {"index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}},
            )
        )
        events.append(("content_block_stop", {"index": 0}))
        index = 1
    if scenario == "tools":
        stop_reason = "tool_use"
        for n, pieces in enumerate(TOOL_ARGUMENTS):
            block = {"type": "tool_use", "id": f"toolu_0{n}", "name": "get_weather", "input": {}}
            events.append(("content_block_start", {"index": n, "content_block": block}))
            for piece in pieces:
                events.append(
                    (
                        "content_block_delta",
                        {"index": n, "delta": {"type": "input_json_delta", "partial_json": piece}},
                    )
                )
            events.append(("content_block_stop", {"index": n}))
    else:
        block = {"type": "text", "text": ""}
        events.append(("content_block_start", {"index": index, "content_block": block}))
        for piece in TEXT_PIECES:
            events.append(
                (
                    "content_block_delta",
                    {"index": index, "delta": {"type": "text_delta", "text": piece}},
                )
            )
        events.append(("content_block_stop", {"index": index}))
    events.append(
        (
            "message_delta",
            {
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": ANTHROPIC_OUTPUT_TOKENS},
            },
        )
    )
    events.append(("message_stop", {}))
    return [_sse({"type": kind, **data}, event=kind) for kind, data in events]


def messages_json(scenario: str) -> dict[str, Any]:
    """A non-streamed message."""
    usage = {**ANTHROPIC_START_USAGE, "output_tokens": ANTHROPIC_OUTPUT_TOKENS}
    if scenario == "tools":
        content = [
            {
                "type": "tool_use",
                "id": f"toolu_0{n}",
                "name": "get_weather",
                "input": json.loads("".join(pieces)),
            }
            for n, pieces in enumerate(TOOL_ARGUMENTS)
        ]
        return _message(content, "tool_use", usage)
    return _message([{"type": "text", "text": TEXT}], "end_turn", usage)


ANTHROPIC_ERROR = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
    "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
}


async def messages(request: Request) -> Response:
    payload = await request.json()
    scenario = request.headers.get("x-scenario", "answer")
    if scenario == "error":
        return JSONResponse(ANTHROPIC_ERROR, status_code=529)
    if not payload.get("stream"):
        return JSONResponse(messages_json(scenario))
    events = messages_stream_events(scenario)
    return _stream(_cut(events) if scenario == "cut" else iter(events))


def upstream_app() -> Starlette:
    """The upstream, as an ASGI app."""
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
        ]
    )
