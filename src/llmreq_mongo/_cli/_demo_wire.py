"""What the demo's calls get back: provider responses on the wire, read as capture reads them.

Each call's answer is written out as its provider sends it (a JSON body, or
the event stream of a streamed call: OpenAI chat completion chunks, or
Anthropic Messages events) and fed through
:class:`~llmreq_mongo._capture.ResponseParser`, the reader the ASGI
middleware and the httpx transport use. The recorded
:class:`~llmreq_mongo.LLMResponse` is therefore exactly what capturing the
same bytes would record: the assembled body of a stream, usage counted once
(and absent for a chat stream without ``stream_options.include_usage``), the
finish reasons, the error text of an error body or of a cut stream. Only the
timings are the demo's own: each model's time to the first token and time
per output token, drawn at random, instead of the microseconds the parser
takes here.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from llmreq_mongo._capture import LLMResponse, ResponseParser
from llmreq_mongo._time import to_utc_ms

from ._demo_script import API, ModelProfile

__all__ = ["Fault", "Reply", "response_for", "token_count"]

#: What goes wrong with a call: a 429, a 500, an upstream that cannot be
#: reached, or a stream cut in the middle.
Fault = Literal["rate_limit", "server_error", "unreachable", "cut"]

_PATHS: dict[API, str] = {
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
    "messages": "/v1/messages",
}
_PIECE = re.compile(r"\S+\s*|\s+")
_ALNUM = string.ascii_letters + string.digits
_UNREACHABLE = (
    ("ConnectError: [Errno 111] Connection refused", (1.0, 6.0)),
    ("ConnectTimeout: timed out after 10 s while connecting to the upstream", (10_000, 10_050)),
)


@dataclass(frozen=True)
class Reply:
    """What the model answers: text, or a call of ``run_python`` (with its id)."""

    text: str | None = None
    tool: tuple[str, str] | None = None


def token_count(text: str, model: ModelProfile) -> int:
    """A token count for ``text``, as the model's tokenizer roughly gives it."""
    return max(1, round(len(text) / model.chars_per_token))


def _ident(rng: random.Random, prefix: str, size: int) -> str:
    return prefix + "".join(rng.choices(_ALNUM, k=size))


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _pieces(text: str, rng: random.Random) -> list[str]:
    """``text`` in the pieces a stream sends: one to three words at a time."""
    words = _PIECE.findall(text)
    out: list[str] = []
    i = 0
    while i < len(words):
        step = rng.randint(1, 3)
        out.append("".join(words[i : i + step]))
        i += step
    return out


# -- OpenAI chat completions -----------------------------------------------------------------


def _chat_usage(inputs: int, outputs: int) -> dict[str, Any]:
    return {
        "prompt_tokens": inputs,
        "completion_tokens": outputs,
        "total_tokens": inputs + outputs,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_tool_call(reply: Reply) -> dict[str, Any]:
    assert reply.tool is not None
    call_id, code = reply.tool
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "run_python", "arguments": json.dumps({"code": code})},
    }


def _chat_json(top: dict[str, Any], reply: Reply, inputs: int, outputs: int) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool is not None:
        message["tool_calls"] = [_chat_tool_call(reply)]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "tool_calls" if reply.tool else "stop",
    }
    body = {
        **top,
        "object": "chat.completion",
        "choices": [choice],
        "usage": _chat_usage(inputs, outputs),
    }
    return _dump(body)


def _chat_events(
    top: dict[str, Any], reply: Reply, inputs: int, outputs: int, *, usage: bool, rng: random.Random
) -> Iterator[bytes]:
    """The chunks of a streamed chat completion, ``data: [DONE]`` last."""
    chunk = {**top, "object": "chat.completion.chunk"}

    def data(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        extra = {"usage": None} if usage else {}
        return b"data: " + _dump({**chunk, "choices": [choice], **extra}) + b"\n\n"

    # A call of a tool opens with no content at all, as OpenAI's streams do.
    yield data(
        {"role": "assistant", "content": None if reply.text is None else "", "refusal": None}
    )
    for piece in _pieces(reply.text or "", rng):
        yield data({"content": piece})
    if reply.tool is not None:
        call = _chat_tool_call(reply)
        arguments = call["function"]["arguments"]
        start = {**call, "index": 0, "function": {"name": "run_python", "arguments": ""}}
        yield data({"tool_calls": [start]})
        for piece in _pieces(arguments, rng):
            yield data({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    yield data({}, "tool_calls" if reply.tool else "stop")
    if usage:
        final = {**chunk, "choices": [], "usage": _chat_usage(inputs, outputs)}
        yield b"data: " + _dump(final) + b"\n\n"
    yield b"data: [DONE]\n\n"


# -- Anthropic Messages ----------------------------------------------------------------------


def _messages_usage(inputs: int, outputs: int) -> dict[str, Any]:
    return {
        "input_tokens": inputs,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": outputs,
        "service_tier": "standard",
    }


def _messages_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    if reply.tool is not None:
        call_id, code = reply.tool
        blocks.append(
            {"type": "tool_use", "id": call_id, "name": "run_python", "input": {"code": code}}
        )
    return blocks


def _messages_json(top: dict[str, Any], reply: Reply, inputs: int, outputs: int) -> bytes:
    body = {
        **top,
        "content": _messages_blocks(reply),
        "stop_reason": "tool_use" if reply.tool else "end_turn",
        "stop_sequence": None,
        "usage": _messages_usage(inputs, outputs),
    }
    return _dump(body)


def _messages_events(
    top: dict[str, Any], reply: Reply, inputs: int, outputs: int, *, rng: random.Random
) -> Iterator[bytes]:
    """The events of a streamed message, ``message_stop`` last."""

    def event(name: str, payload: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: ".encode() + _dump({"type": name, **payload}) + b"\n\n"

    start = {**top, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = _messages_usage(inputs, 1)
    yield event("message_start", {"message": start})
    yield event("ping", {})
    for index, block in enumerate(_messages_blocks(reply)):
        if block["type"] == "text":
            yield event(
                "content_block_start", {"index": index, "content_block": {**block, "text": ""}}
            )
            for piece in _pieces(block["text"], rng):
                delta = {"type": "text_delta", "text": piece}
                yield event("content_block_delta", {"index": index, "delta": delta})
        else:
            opened = {**block, "input": {}}
            yield event("content_block_start", {"index": index, "content_block": opened})
            for piece in _pieces(json.dumps(block["input"]), rng):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield event("content_block_delta", {"index": index, "delta": delta})
        yield event("content_block_stop", {"index": index})
    stop = {"stop_reason": "tool_use" if reply.tool else "end_turn", "stop_sequence": None}
    yield event("message_delta", {"delta": stop, "usage": {"output_tokens": outputs}})
    yield event("message_stop", {})


# -- OpenAI Responses API (not streamed by the demo) -----------------------------------------


def _responses_json(
    top: dict[str, Any], reply: Reply, inputs: int, outputs: int, rng: random.Random
) -> bytes:
    text = {"type": "output_text", "text": reply.text or "", "annotations": [], "logprobs": []}
    item = {
        "id": _ident(rng, "msg_", 48),
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [text],
    }
    body = {
        **top,
        "object": "response",
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "output": [item],
        "usage": {
            "input_tokens": inputs,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": outputs,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": inputs + outputs,
        },
    }
    return _dump(body)


# -- errors ----------------------------------------------------------------------------------


def _error_body(api: API, status: int, model: str) -> bytes:
    if api == "messages":
        kind, message = (
            (
                "rate_limit_error",
                "This request would exceed the rate limit for your "
                "organization of 80,000 input tokens per minute.",
            )
            if status == 429
            else ("api_error", "Internal server error")
        )
        return _dump({"type": "error", "error": {"type": kind, "message": message}})
    if status == 429:
        error = {
            "message": f"Rate limit reached for {model} on tokens per min (TPM): "
            "Limit 200000, Used 199812, Requested 1204. Please try again in 305ms.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    else:
        error = {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    return _dump({"error": error})


# -- the response ----------------------------------------------------------------------------


def _top(api: API, model: ModelProfile, at: dt.datetime, rng: random.Random) -> dict[str, Any]:
    created = int(at.timestamp())
    if api == "messages":
        return {
            "id": _ident(rng, "msg_01", 22),
            "type": "message",
            "role": "assistant",
            "model": model.served_as,
        }
    if api == "responses":
        return {
            "id": "resp_" + rng.randbytes(24).hex(),
            "created_at": created,
            "model": model.served_as,
        }
    return {
        "id": _ident(rng, "chatcmpl-", 29),
        "created": created,
        "model": model.served_as,
        "service_tier": "default",
        "system_fingerprint": "fp_" + rng.randbytes(5).hex(),
    }


def response_for(
    api: API,
    model: ModelProfile,
    reply: Reply,
    *,
    input_tokens: int,
    stream: bool,
    include_usage: bool,
    fault: Fault | None,
    at: dt.datetime,
    rng: random.Random,
) -> LLMResponse:
    """The response a call made at ``at`` records, read from its bytes by the parser.

    Args:
        include_usage: for a chat stream, whether the request asked for the
            final usage chunk (other APIs always report usage).
        fault: what goes wrong, or None for an answer.
    """
    outputs = token_count(reply.text or "", model) + (
        token_count(reply.tool[1], model) + 12 if reply.tool else 0
    )
    first = rng.uniform(*model.first_token_ms)
    total = first + outputs * model.per_token_ms * rng.uniform(0.8, 1.25)
    top = _top(api, model, at, rng)
    streamed = (
        stream and api != "responses" and fault not in ("rate_limit", "server_error", "unreachable")
    )
    parser = ResponseParser(_PATHS[api], "text/event-stream" if streamed else "application/json")
    status: int | None = 200
    error: str | None = None
    if fault in ("rate_limit", "server_error"):
        status = 429 if fault == "rate_limit" else 500
        parser.feed(_error_body(api, status, model.served_as))
        total = rng.uniform(40, 220) if status == 429 else rng.uniform(900, 6000)
    elif fault == "unreachable":
        status = None
        error, span = rng.choice(_UNREACHABLE)
        total = rng.uniform(*span)
    elif streamed:
        events = list(
            _messages_events(top, reply, input_tokens, outputs, rng=rng)
            if api == "messages"
            else _chat_events(top, reply, input_tokens, outputs, usage=include_usage, rng=rng)
        )
        if fault == "cut":
            # The connection drops part way: the parser keeps what came before.
            events = events[: max(2, len(events) // 2)]
            total = first + (total - first) / 2
        for chunk in events:
            parser.feed(chunk)
    elif api == "messages":
        parser.feed(_messages_json(top, reply, input_tokens, outputs))
    elif api == "responses":
        parser.feed(_responses_json(top, reply, input_tokens, outputs, rng))
    else:
        parser.feed(_chat_json(top, reply, input_tokens, outputs))
    response = parser.finish(status=status, error=error)
    return response.model_copy(
        update={
            "latency_ms": round(total, 1),
            "ttft_ms": round(first, 1) if response.stream else None,
            "completed_at": to_utc_ms(at + dt.timedelta(milliseconds=total)),
        }
    )
