"""LLMResponse and TokenUsage: typed as the record stores them, refused with clear errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from llmreq_mongo._capture import LLMResponse, TokenUsage, response_document, response_from
from llmreq_mongo._capture.models import DecodedBody
from llmreq_mongo._queries import encode_payload
from llmreq_mongo.errors import InvalidInput, InvalidPayload

FULL: dict[str, Any] = {
    "status": 200,
    "body": {"id": "chatcmpl-1", "choices": [], "$schema": "x", "a.b": 1},
    "model": "gpt-4o",
    "response_id": "chatcmpl-1",
    "finish_reasons": ["stop"],
    "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
    "error": None,
    "stream": True,
    "latency_ms": 812.5,
    "ttft_ms": 120,
    "completed_at": dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc),
    "truncated": False,
}


def test_a_response_from_a_dict() -> None:
    response = response_from(FULL)
    assert response.usage == TokenUsage(input_tokens=10, output_tokens=2, total_tokens=12)
    assert response.ttft_ms == 120.0
    # BSON keeps milliseconds.
    assert response.completed_at == dt.datetime(
        2026, 12, 1, 12, 0, 0, 123000, tzinfo=dt.timezone.utc
    )
    assert response_from(response) is response
    # The body is stored as a request is: awkward keys escaped.
    assert encode_payload(response.body)["%24schema"] == "x"
    assert encode_payload(response.body)["a%2Eb"] == 1


def test_a_dump_builds_the_same_response() -> None:
    response = response_from(FULL)
    assert response_from(response.model_dump()) == response


def test_only_latency_is_required_and_counts_default_to_none() -> None:
    response = LLMResponse(latency_ms=3)
    assert response.status is None and response.usage is None and response.body is None
    assert response.finish_reasons == [] and response.stream is False
    assert response.completed_at.tzinfo is not None
    assert TokenUsage().model_dump() == dict.fromkeys(TokenUsage.model_fields)


def test_a_body_that_is_not_json_names_its_place_in_the_response() -> None:
    with pytest.raises(InvalidPayload, match=r"^response\.body\['choices'\]\[0\]: a value of type"):
        response_from({**FULL, "body": {"choices": [object()]}})
    with pytest.raises(InvalidPayload, match=r"^response\.body\['x'\]: nan is not a JSON number"):
        LLMResponse(latency_ms=1, body={"x": float("nan")})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"usage": {"input_tokens": -1}}, r"response\.usage\.input_tokens: .*non-negative integer"),
        ({"usage": {"input_tokens": True}}, r"response\.usage\.input_tokens: .*got True"),
        ({"usage": {"input_tokens": "12"}}, r"response\.usage\.input_tokens: .*got '12'"),
        ({"usage": {"prompt_tokens": 1}}, r"response\.usage\.prompt_tokens is not a field"),
        ({"status": "200"}, r"response\.status: .*HTTP status as an int"),
        ({"status": 42}, r"response\.status: "),
        ({"latency_ms": True}, r"response\.latency_ms must be a number of milliseconds"),
        ({"latency_ms": float("inf")}, r"response\.latency_ms must be a finite number"),
        ({"ttft_ms": -1}, r"response\.ttft_ms must be a finite number"),
        ({"finish_reasons": "stop"}, r"response\.finish_reasons"),
        ({"stream": 1}, r"response\.stream"),
        ({"completed_at": dt.datetime(2026, 1, 1)}, r"response\.completed_at is a naive datetime"),
        ({"completed_at": "2026-01-01"}, r"response\.completed_at must be a timezone-aware"),
        ({"headers": {}}, r"response\.headers is not a field of response; remove it"),
    ],
)
def test_bad_fields_are_refused_with_what_was_wrong(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        response_from({**FULL, **change})


def test_missing_latency_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"response\.latency_ms is required"):
        response_from({"status": 200})


@pytest.mark.parametrize("value", [None, 200, "ok", ["status", 200]])
def test_response_from_refuses_other_types(value: Any) -> None:
    with pytest.raises(InvalidInput, match="response must be an LLMResponse or a dict"):
        response_from(value)


def test_assignment_is_checked_too() -> None:
    usage = TokenUsage(input_tokens=1)
    with pytest.raises(InvalidInput, match=r"^usage\.input_tokens: .*got -5"):
        usage.input_tokens = -5
    response = LLMResponse(latency_ms=1)
    with pytest.raises(InvalidPayload, match=r"^response\.body\[0\]"):
        response.body = [object()]
    assert usage.input_tokens == 1 and response.body is None


@pytest.mark.parametrize(
    "body",
    [
        {"id": "r", "choices": [{"message": {"content": "hi"}}]},
        {"$schema": "x", "a.b": [1, {"%": 2}]},  # kept as is, escaped when stored
        {"n": 2**64},
        {"f": float("nan")},
        {"s": "\ud800"},
        {1: "not a string key"},
        [1, (2, 3)],
    ],
)
def test_a_decoded_body_is_checked_as_any_body(body: Any) -> None:
    """The parser's own bodies skip the copy, not the check: the same value or error."""
    refused: InvalidInput | None = None
    try:
        expected: Any = LLMResponse(body=body, latency_ms=1.0).body
    except InvalidInput as exc:
        refused = exc
    if refused is None:
        assert LLMResponse(body=DecodedBody(body), latency_ms=1.0).body == expected
        return
    with pytest.raises(type(refused)) as info:
        LLMResponse(body=DecodedBody(body), latency_ms=1.0)
    assert str(info.value) == str(refused)


def _field_by_field(response: LLMResponse) -> dict[str, Any]:
    """The stored form, read one field at a time, in the order of the model's fields."""
    stored = {name: getattr(response, name) for name in LLMResponse.model_fields}
    stored["body"] = encode_payload(response.body)
    if response.usage is not None:
        stored["usage"] = {name: getattr(response.usage, name) for name in TokenUsage.model_fields}
    return stored


class _Subclassed(LLMResponse):
    extra_note: str | None = None


@pytest.mark.parametrize(
    "response",
    [
        LLMResponse(**FULL),
        LLMResponse(latency_ms=1.0),
        LLMResponse(**FULL).model_copy(update={"body": None, "truncated": True}),
        LLMResponse.model_construct(**{**FULL, "usage": TokenUsage(output_tokens=3)}),
        _Subclassed(**FULL, extra_note="left out: not a field of LLMResponse"),
    ],
    ids=["full", "bare", "copied", "constructed", "subclass"],
)
def test_the_stored_form_is_every_field_in_order(response: LLMResponse) -> None:
    stored = response_document(response)
    expected = _field_by_field(response)
    assert list(stored) == list(expected)
    assert stored == expected
    assert type(stored["finish_reasons"]) is list
    assert stored["finish_reasons"] is not response.finish_reasons
    usage = stored["usage"]
    assert usage is None or (type(usage) is dict and list(usage) == list(TokenUsage.model_fields))


def test_the_stored_form_follows_an_assignment() -> None:
    response = LLMResponse(**FULL)
    response.status = 503
    response.usage = None
    stored = response_document(response)
    assert stored["status"] == 503 and stored["usage"] is None
    assert list(stored) == list(LLMResponse.model_fields)
