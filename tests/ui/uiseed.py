"""Seed data for the history browser's tests, stored exactly as the recorder stores it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from bson import ObjectId

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._time import now_ms

__all__ = ["XSS", "ago", "chat_session", "store"]

#: Payload text that must reach the page as text and run nothing.
XSS = (
    "<script>window.pwned=1</script>",
    '"><img src=x onerror="window.pwned=2">',
    "javascript:window.pwned=3",
    "<svg onload=window.pwned=4>",
)


async def store(
    client: LLMClient, records: Sequence[tuple[str | None, Any, dt.datetime]]
) -> list[ObjectId]:
    """Insert ``(session_key, payload, created_at)`` records in the recorder's stored form."""
    docs = []
    for key, payload, at in records:
        checked = validate_request(client, payload, key, False, client_model=LLMClient)
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
