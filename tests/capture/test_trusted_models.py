"""The responses the parser builds without validation are the ones validation would build.

``vouched_response`` and ``trusted_usage`` skip pydantic's validation for the
values the capture makes itself; anything else still goes through it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from capture_upstream import (
    chat_json,
    chat_stream_chunks,
    messages_json,
    messages_stream_events,
    responses_json,
    responses_stream_events,
)

from llmreq_mongo._capture import LLMResponse, ResponseParser, TokenUsage, usage_from_anthropic
from llmreq_mongo._capture import models as capture_models
from llmreq_mongo._capture.models import DecodedBody, trusted_usage, vouched_response
from llmreq_mongo._queries import forget_vouched
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import InvalidInput

SSE = "text/event-stream"
JSON = "application/json"

CASES: dict[str, tuple[str, str, list[bytes], int | None]] = {
    "chat json": ("/v1/chat/completions", JSON, [json.dumps(chat_json("text")).encode()], 200),
    "chat tools json": (
        "/v1/chat/completions",
        JSON,
        [json.dumps(chat_json("tools")).encode()],
        200,
    ),
    "chat stream": (
        "/v1/chat/completions",
        SSE,
        chat_stream_chunks("text", include_usage=True),
        200,
    ),
    "chat stream without usage": (
        "/v1/chat/completions",
        SSE,
        chat_stream_chunks("text", include_usage=False),
        200,
    ),
    "responses json": ("/v1/responses", JSON, [json.dumps(responses_json("text")).encode()], 200),
    "responses stream": ("/v1/responses", SSE, responses_stream_events("tools"), 200),
    "messages json": ("/v1/messages", JSON, [json.dumps(messages_json("text")).encode()], 200),
    "messages stream": ("/v1/messages", SSE, messages_stream_events("tools"), 200),
    "error status": (
        "/v1/chat/completions",
        JSON,
        [b'{"error": {"type": "rate_limit", "message": "slow down"}}'],
        429,
    ),
    "not json": ("/v1/chat/completions", JSON, [b"<html>bad gateway</html>"], 502),
    "no status, nothing sent": ("/v1/chat/completions", JSON, [], None),
}


def parsed(path: str, content_type: str, chunks: list[bytes], status: int | None) -> LLMResponse:
    parser = ResponseParser(path, content_type)
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish(status=status)


def validated(response: LLMResponse) -> LLMResponse:
    """The same response, built by validation from its fields."""
    fields = {name: getattr(response, name) for name in LLMResponse.model_fields}
    if fields["usage"] is not None:
        fields["usage"] = TokenUsage(**fields["usage"].model_dump())
    return LLMResponse(**fields)


def assert_same(built: LLMResponse, checked: LLMResponse) -> None:
    assert type(built) is LLMResponse
    assert built == checked
    assert built.model_dump() == checked.model_dump()
    assert built.model_dump(mode="json") == checked.model_dump(mode="json")
    assert built.model_fields_set == checked.model_fields_set
    assert repr(built) == repr(checked)
    assert list(built.__dict__) == list(checked.__dict__)
    if checked.usage is not None:
        assert built.usage is not None
        assert built.usage.model_fields_set == checked.usage.model_fields_set
        assert repr(built.usage) == repr(checked.usage)


@pytest.mark.parametrize("case", list(CASES))
def test_a_parsed_response_is_the_validated_one(case: str) -> None:
    built = parsed(*CASES[case])
    forget_vouched()
    assert_same(built, validated(built))


@pytest.mark.parametrize("case", ["chat json", "chat stream", "messages stream"])
def test_without_direct_construction_model_construct_gives_the_same(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = parsed(*CASES[case])
    monkeypatch.setattr(capture_models, "_DIRECT", False)
    constructed = parsed(*CASES[case])
    forget_vouched()
    # Only the timings differ between the two parses.
    timing = {"latency_ms": 0.0, "ttft_ms": None, "completed_at": direct.completed_at}
    assert_same(
        constructed.model_copy(update=timing),
        validated(direct).model_copy(update=timing),
    )


def test_a_built_response_still_checks_what_is_assigned() -> None:
    response = parsed(*CASES["chat json"])
    forget_vouched()
    with pytest.raises(InvalidInput, match="status"):
        response.status = True
    with pytest.raises(InvalidInput, match="latency_ms"):
        response.latency_ms = -1
    assert response.usage is not None
    with pytest.raises(InvalidInput, match="input_tokens"):
        response.usage.input_tokens = "12"  # type: ignore[assignment]


def fields(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": 200,
        "model": "gpt-4o",
        "response_id": "chatcmpl-1",
        "finish_reasons": ["stop"],
        "usage": None,
        "error": None,
        "stream": False,
        "latency_ms": 12.5,
        "ttft_ms": None,
        "completed_at": now_ms(),
        "truncated": False,
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({"status": True}, "status"),
        ({"status": 99}, "status"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"finish_reasons": ["stop", 3]}, "finish_reasons"),
        ({"completed_at": dt.datetime(2026, 1, 1)}, "completed_at"),
        ({"model": b"gpt"}, "model"),
    ],
)
def test_values_the_capture_does_not_make_are_validated(
    changes: dict[str, Any], refused: str
) -> None:
    with pytest.raises(InvalidInput, match=refused):
        vouched_response(fields(**changes), None)


def test_values_validation_would_change_are_validated_into_their_stored_form() -> None:
    # A time with microseconds or another zone is kept to the millisecond, in UTC.
    paris = dt.timezone(dt.timedelta(hours=1))
    given = dt.datetime(2026, 1, 1, 13, 0, 0, 123456, tzinfo=paris)
    response = vouched_response(fields(completed_at=given, latency_ms=3), None)
    utc = dt.timezone.utc
    assert response.completed_at == dt.datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=utc)
    assert type(response.latency_ms) is float


def test_an_unplain_body_is_still_checked_and_named() -> None:
    with pytest.raises(InvalidInput, match=r"response\.body"):
        vouched_response(fields(), DecodedBody({"n": float("nan")}))
    escaped = vouched_response(fields(), DecodedBody({"$where": 1}))
    assert escaped.body == {"$where": 1}


def test_trusted_usage_validates_counts_it_was_not_promised() -> None:
    counts: dict[str, int | None] = dict.fromkeys(TokenUsage.model_fields)
    assert trusted_usage({**counts, "input_tokens": 5}) == TokenUsage(input_tokens=5)
    with pytest.raises(InvalidInput, match="input_tokens"):
        trusted_usage({**counts, "input_tokens": 2**63})
    with pytest.raises(InvalidInput, match="output_tokens"):
        trusted_usage({**counts, "output_tokens": True})


def test_anthropic_sums_past_a_count_are_none_not_an_error() -> None:
    big = 2**63 - 1
    usage = usage_from_anthropic(
        {"input_tokens": big, "cache_read_input_tokens": big, "output_tokens": 7}
    )
    assert usage is not None
    assert usage.input_tokens is None and usage.total_tokens is None
    assert usage.cache_read_input_tokens == big and usage.output_tokens == 7
