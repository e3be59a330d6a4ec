"""The recorder's payloads checked by the encoder: the same bytes and errors as the full check.

``record()`` walks a payload only for what the BSON encoder cannot check,
then encodes with ``check_keys=True``; any refusal sends the record through
the full check. These tests hold that path to ``objects.create``'s: for any
payload and response body, the same stored bytes or the same error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings

from llmreq_mongo import LLMClient, LLMClientRequest, LLMResponse, Recorder
from llmreq_mongo._documents import ValidatedRequest, encode_request, validate_request
from llmreq_mongo._queries import MAX_NESTING, MAX_PAYLOAD_BYTES, is_plain
from llmreq_mongo.errors import InvalidInput, InvalidPayload, PayloadTooLarge
from test_recorder_hot_path import json_like

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
RECORD_ID = ObjectId("65f000000000000000000001")


def encoded(checked: ValidatedRequest) -> bytes:
    return encode_request(checked, record_id=RECORD_ID, now=NOW)


Outcome = bytes | tuple[type[Exception], str]


def outcome(client: LLMClient, payload: Any, response: Any, *, copy: bool) -> Outcome:
    """What a write path stores for ``payload`` (the bytes), or what it raises."""
    try:
        checked = validate_request(
            client,
            payload,
            "k",
            False,
            client_model=LLMClient,
            response=response,
            fit=False,
            copy=copy,
        )
        return encoded(checked)
    except InvalidInput as exc:
        return type(exc), str(exc)


def same_outcome(client: LLMClient, payload: Any, response: Any = None) -> Outcome:
    """The recorder's outcome (``copy=False``), checked equal to ``objects.create``'s."""
    got = outcome(client, payload, response, copy=False)
    assert got == outcome(client, payload, response, copy=True)
    return got


def examples(count: int) -> settings:
    """Settings for ``count`` examples; the client fixture is only read, so one serves all."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@examples(300)
@given(value=json_like)
def test_any_payload_is_stored_or_refused_as_create_does(client: LLMClient, value: Any) -> None:
    same_outcome(client, value)


@examples(150)
@given(payload=json_like, body=json_like)
def test_any_response_body_is_stored_as_create_stores_it(
    client: LLMClient, payload: Any, body: Any
) -> None:
    try:
        response = LLMResponse(status=200, body=body, latency_ms=1.0)
    except InvalidInput:
        return  # refused when built, before any write path sees it
    same_outcome(client, payload, response)


@pytest.mark.parametrize(
    "payload",
    [
        {"$schema": "x"},  # escaped: the encoder refuses it with check_keys
        {"a": {"b.c": 1}},
        {"list": [{"$ref": "r", "$id": 1}]},
        {"100%": True},  # escaped too, though the encoder would take it
        {"x\x00y": 1},  # refused
        {"n": 2**63},  # refused
        {"s": "\ud800"},  # refused
        {"f": float("nan")},  # refused
        {"t": (1, 2)},  # converted to a list
        {"d": dt.datetime(2026, 1, 1, tzinfo=UTC)},  # converted to a string
        {1: "key"},  # refused
        {"e": ""},
        [],
        None,
    ],
)
def test_each_kind_of_key_and_value(client: LLMClient, payload: Any) -> None:
    same_outcome(client, payload)


def test_awkward_keys_in_a_response_body(client: LLMClient) -> None:
    response = LLMResponse(status=200, body={"$id": "x", "a.b": {"%": 1}}, latency_ms=1.0)
    assert isinstance(same_outcome(client, {"q": 1}, response), bytes)


def nested(depth: int) -> Any:
    """``depth`` documents, each inside the next."""
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize("depth", [MAX_NESTING, MAX_NESTING + 1])
def test_nesting_at_and_past_the_limit(client: LLMClient, depth: int) -> None:
    payload = nested(depth)
    assert is_plain(payload) is (depth <= MAX_NESTING)
    got = same_outcome(client, payload)
    assert isinstance(got, bytes) is (depth <= MAX_NESTING)


def test_too_large_is_refused_as_create_refuses_it(client: LLMClient) -> None:
    got = same_outcome(client, {"text": "x" * MAX_PAYLOAD_BYTES})
    assert isinstance(got, tuple) and got[0] is PayloadTooLarge


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"a": [1, 2.5, "x", None, True, {"b": []}]}, True),
        (None, True),
        ([], True),
        ("text", False),  # a payload is a document, an array or None
        ({"a": float("inf")}, False),
        ({"a%": 1}, False),
        ({"a": (1,)}, False),
        ({("a",): 1}, False),
        ({"a": b"bytes"}, False),
    ],
)
def test_is_plain(value: Any, plain: bool) -> None:
    assert is_plain(value) is plain


async def test_record_raises_the_full_checks_error_at_once(client: LLMClient) -> None:
    async with Recorder() as recorder:
        with pytest.raises(InvalidPayload) as info:
            recorder.record(client, {"messages": [{"x\x00y": 1}]})
        assert "messages" in str(info.value)
        assert recorder.stats.accepted == 0


async def test_escaped_keys_recorded_come_back_as_recorded(client: LLMClient) -> None:
    payload = {"$schema": "s", "a.b": {"c%": [1, {"$ref": "x", "$id": 2}]}}
    body = {"$defs": {"x.y": 1}}
    async with Recorder() as recorder:
        recorded = recorder.record(
            client, payload, response=LLMResponse(status=200, body=body, latency_ms=3.0)
        )
        await recorder.flush()
    back = await LLMClientRequest.objects.get(pk=recorded)
    assert back.request == payload
    assert back.response is not None and back.response.body == body
