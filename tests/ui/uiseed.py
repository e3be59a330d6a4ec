"""Seed data for the history browser's tests, stored exactly as the recorder stores it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bson import ObjectId

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._time import now_ms

__all__ = [
    "XSS",
    "ago",
    "anthropic_answer",
    "chat_answer",
    "chat_session",
    "page_paths",
    "responses_answer",
    "store",
]

#: Payload text that must reach the page as text and run nothing.
XSS = (
    "<script>window.pwned=1</script>",
    '"><img src=x onerror="window.pwned=2">',
    "javascript:window.pwned=3",
    "<svg onload=window.pwned=4>",
)


async def store(client: LLMClient, records: Sequence[tuple[Any, ...]]) -> list[ObjectId]:
    """Store ``(session_key, payload, created_at[, response])`` records as the recorder does.

    ``response`` is an :class:`~llmreq_mongo.LLMResponse` or a dict of its fields.
    """
    docs = []
    for key, payload, at, *rest in records:
        response = rest[0] if rest else None
        checked = validate_request(
            client, payload, key, False, client_model=LLMClient, response=response
        )
        docs.append(request_document(checked, record_id=ObjectId(), now=at))
    await LLMClientRequest.get_pymongo_collection().insert_many(docs)
    return [d["_id"] for d in docs]


def chat_session(
    key: str, turns: Sequence[tuple[str, str]], *, start: dt.datetime, model: str = "gpt-4o"
) -> list[tuple[str | None, Any, dt.datetime]]:
    """A chat session as a client records it: each call resends the conversation so far.

    ``turns`` are ``(question, answer)`` pairs; call ``i`` holds every earlier
    question and answer, then question ``i``.
    """
    out: list[tuple[str | None, Any, dt.datetime]] = []
    messages: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
    for i, (question, answer) in enumerate(turns):
        messages = [*messages, {"role": "user", "content": question}]
        out.append((key, {"model": model, "messages": messages}, start + dt.timedelta(seconds=i)))
        messages = [*messages, {"role": "assistant", "content": answer}]
    return out


def ago(**delta: float) -> dt.datetime:
    """An instant this long before now (millisecond precision, as stored)."""
    return now_ms() - dt.timedelta(**delta)


def chat_answer(
    text: str | None,
    *,
    tool: tuple[str, str] | None = None,
    model: str = "gpt-4o-2024-08-06",
    usage: tuple[int, int] | None = (31, 12),
    **fields: Any,
) -> dict[str, Any]:
    """The response to a chat completion: ``text``, or a call of ``tool`` (name, arguments)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool is not None:
        function = {"name": tool[0], "arguments": tool[1]}
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": function}]
    reason = "tool_calls" if tool else "stop"
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason}],
    }
    out: dict[str, Any] = {
        "status": 200,
        "body": body,
        "model": model,
        "response_id": "chatcmpl-1",
        "finish_reasons": [reason],
        "usage": None
        if usage is None
        else {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)},
        "latency_ms": 812.0,
    }
    out.update(fields)
    return out


def anthropic_answer(
    text: str, *, tool: tuple[str, dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    """The response of Anthropic Messages: ``text``, then a ``tool_use`` block if given."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if tool is not None:
        content.append({"type": "tool_use", "id": "toolu_1", "name": tool[0], "input": tool[1]})
    reason = "tool_use" if tool else "end_turn"
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": content,
        "stop_reason": reason,
    }
    out: dict[str, Any] = {
        "status": 200,
        "body": body,
        "model": "claude-sonnet-4-20250514",
        "finish_reasons": [reason],
        "usage": {"input_tokens": 90, "output_tokens": 40},
        "latency_ms": 2400.0,
    }
    out.update(fields)
    return out


def responses_answer(text: str, **fields: Any) -> dict[str, Any]:
    """The response of the OpenAI Responses API: one message item of ``text``."""
    item = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    body = {"id": "resp_1", "object": "response", "status": "completed", "output": [item]}
    out: dict[str, Any] = {
        "status": 200,
        "body": body,
        "model": "gpt-4o-mini-2024-07-18",
        "finish_reasons": ["completed"],
        "usage": {"input_tokens": 50, "output_tokens": 20},
        "latency_ms": 640.0,
    }
    out.update(fields)
    return out


def page_paths(prefix: str, request_id: Any) -> tuple[str, ...]:
    """Every kind of page of a browser mounted at ``prefix``, found or not, for session "s"."""
    return (
        f"{prefix}/",
        f"{prefix}/sessions",
        f"{prefix}/sessions/s",
        f"{prefix}/requests/{request_id}",
        f"{prefix}/sessions/nope",
        f"{prefix}/requests/bad",
    )
