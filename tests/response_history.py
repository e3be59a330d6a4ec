"""A seeded history of calls with what came back, for the report tests.

Every expected figure is computed in the tests from :data:`CALLS`, the same
values that are stored, never copied from a run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo._documents import request_document, validate_request

UTC = dt.timezone.utc
DAY = dt.datetime(2026, 3, 2, tzinfo=UTC)


def at(hours: float) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours)


def usage(inp: int | None, out: int | None) -> dict[str, Any]:
    return {"input_tokens": inp, "output_tokens": out}


def answer(
    model: str | None,
    latency: float,
    *,
    tokens: dict[str, Any] | None = None,
    status: int | None = 200,
    error: str | None = None,
    ttft: float | None = None,
) -> dict[str, Any]:
    """A response as :meth:`LLMClientRequest.objects.create` takes it."""
    return {
        "status": status,
        "model": model,
        "usage": tokens,
        "error": error,
        "stream": ttft is not None,
        "latency_ms": latency,
        "ttft_ms": ttft,
        "body": None if error else {"choices": [{"message": {"content": "ok"}}]},
    }


@dataclass(frozen=True)
class Call:
    client: str  # "support" or "sales"
    session: str | None
    hours: float
    response: dict[str, Any] | None


CALLS: list[Call] = [
    Call("support", "s1", 1, answer("gpt-4o", 120.0, tokens=usage(100, 20))),
    # A dated snapshot: priced as gpt-4o.
    Call("support", "s1", 2, answer("gpt-4o-2024-08-06", 400.0, tokens=usage(50, 10), ttft=30.0)),
    # Streamed without usage: its tokens are unknown, not 0.
    Call("support", "s1", 3, answer("gpt-4o-mini", 200.0, ttft=15.0)),
    # Never reached the provider: an error with no status and no model.
    Call("support", "s1", 4, answer(None, 5.0, status=None, error="upstream unreachable")),
    # A request recorded alone.
    Call("support", "s2", 5, None),
    # Refused by the provider: an error by status alone.
    Call("support", "s2", 6, answer("claude-3-5-sonnet-20241022", 50.0, status=429)),
    # Only the input count reported.
    Call("sales", "s3", 7, answer("gpt-4o", 90.0, tokens=usage(7, None))),
    # Zero tokens reported: 0, not None.
    Call("sales", "s3", 8, answer("gpt-4o", 60.0, tokens=usage(0, 0))),
    Call("sales", None, 9, answer("gpt-4o-mini", 700.0, tokens=usage(1000, 300), ttft=80.0)),
    # A server error that still reported usage.
    Call("sales", "s4", 30, answer("gpt-4o", 1500.0, tokens=usage(10, 0), status=500)),
]


async def put(
    client: LLMClient,
    session: str | None,
    when: dt.datetime,
    response: Any = None,
    *,
    payload: Any = None,
    is_aggregation: bool = False,
) -> ObjectId:
    checked = validate_request(
        client,
        payload if payload is not None else {"q": 1},
        session,
        is_aggregation,
        client_model=LLMClient,
        response=response,
    )
    doc = request_document(checked, record_id=ObjectId(), now=when)
    await LLMClientRequest.get_pymongo_collection().insert_one(doc)
    return doc["_id"]


async def seed(support: LLMClient, sales: LLMClient) -> None:
    """Store :data:`CALLS`, plus a rollup record that no report may count."""
    clients = {"support": support, "sales": sales}
    for call in CALLS:
        await put(clients[call.client], call.session, at(call.hours), call.response)
    await put(support, "s1", at(10), payload={"count": 99}, is_aggregation=True)


def failed(call: Call) -> bool:
    """The definition the reports implement: an ``error``, or a status of 400 or more."""
    r = call.response
    return r is not None and (r["error"] is not None or (r["status"] or 0) >= 400)


def token_sum(calls: list[Call], field: str) -> int | None:
    """The sum of a usage count over the calls that reported it; None if none did."""
    counts = [
        c.response["usage"][field]
        for c in calls
        if c.response and c.response["usage"] and c.response["usage"][field] is not None
    ]
    return sum(counts) if counts else None
