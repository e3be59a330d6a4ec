"""Payloads checked by the encoder: the same bytes and errors as the full check.

``record()`` walks a payload only for what the BSON encoder cannot check,
then encodes with ``check_keys=True``; ``objects.create`` checks it by the
copy orjson makes of it (``plain_copy``), and encodes the same way. Any
refusal sends the record through the full check. These tests hold both
paths to the full check's: for any payload and response body, the same
stored bytes or the same error.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import uuid
from typing import Any

import bson
import orjson
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings

from llmreq_mongo import LLMClient, LLMClientRequest, LLMResponse, Recorder
from llmreq_mongo._documents import ValidatedRequest, encode_request, validate_request
from llmreq_mongo._queries import (
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    NOT_PLAIN,
    is_plain,
    normalize_payload,
    plain_copy,
)
from llmreq_mongo.errors import InvalidInput, InvalidPayload, PayloadTooLarge
from test_recorder_hot_path import containers_of, json_like, same_shape

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
RECORD_ID = ObjectId("65f000000000000000000001")


def encoded(checked: ValidatedRequest) -> bytes:
    return encode_request(checked, record_id=RECORD_ID, now=NOW)


Outcome = bytes | tuple[type[Exception], str]


def outcome(client: LLMClient, payload: Any, response: Any, *, copy: bool, fit: bool) -> Outcome:
    """What a write path stores for ``payload`` (the bytes), or what it raises."""
    try:
        checked = validate_request(
            client,
            payload,
            "k",
            False,
            client_model=LLMClient,
            response=response,
            fit=fit,
            copy=copy,
        )
        return encoded(checked)
    except InvalidInput as exc:
        return type(exc), str(exc)


def same_outcome(client: LLMClient, payload: Any, response: Any = None) -> Outcome:
    """The full check's outcome, checked equal to the recorder's and to ``objects.create``'s."""
    full = outcome(client, payload, response, copy=True, fit=True)
    assert outcome(client, payload, response, copy=False, fit=False) == full, "record()"
    assert outcome(client, payload, response, copy=True, fit=False) == full, "objects.create"
    return full


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


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class Mode(str, enum.Enum):
    FAST = "fast"


class Ratio(float):
    pass


class Name(str):
    pass


@dataclasses.dataclass
class Point:
    x: int


#: Values orjson writes but not as they are (a NaN as null, a tuple as an
#: array, an enum as its value), or refuses: each must take the full check
#: or be stored as the full check stores it.
HOSTILE_VALUES: list[Any] = [
    {"nan": float("nan"), "inf": float("-inf")},
    {"tuple": ("a", 1)},
    [("nested", ("tuple",))],
    {"enum": Colour.RED},
    {"int enum": Level.HIGH},
    {"str enum": Mode.FAST},
    {"uuid": uuid.UUID(int=7)},
    {"ordered": collections.OrderedDict(a=1)},
    {"ratio": Ratio(0.5)},
    {Name("subclass key"): 1},
    {Mode.FAST: "an enum as a key"},
    {"point": Point(1)},
    {"date": dt.date(2026, 1, 1)},
    {"fragment": orjson.Fragment(b'{"raw": 1}')},
    {"bytes": bytearray(b"x")},
    {"u64": 2**64 - 1},
    {"beyond": 2**64},
    {"percent in a value": "100%"},
    {"control": "\x01"},
    {"zero": -0.0, "one": 1.0, "int": 1, "true": True},
]


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
        *HOSTILE_VALUES,
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


def assert_the_full_checks_copy(value: Any) -> None:
    """``plain_copy(value)`` declines, or is what the full check makes of ``value``.

    When the full check refuses or escapes ``value``, the encoder, which
    completes ``plain_copy``'s check, must refuse the copy.
    """
    copy = plain_copy(value)
    if copy is NOT_PLAIN:
        return
    assert is_plain(copy)
    assert not containers_of(copy) & containers_of(value), "a copy shares nothing"
    try:
        normalized, escaped = normalize_payload(value)
    except InvalidPayload:
        escaped = True
    else:
        if not escaped:
            assert same_shape(copy, normalized)
            assert bson.encode({"v": copy}) == bson.encode({"v": normalized})  # the sign of 0
            return
    with pytest.raises((bson.errors.BSONError, OverflowError, ValueError)):
        bson.encode({"v": copy}, check_keys=True)


@settings(max_examples=300, deadline=None)
@given(value=json_like)
def test_plain_copy_is_the_full_checks_copy(value: Any) -> None:
    assert_the_full_checks_copy(value)


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_plain_copy_of_what_orjson_writes_otherwise(value: Any) -> None:
    assert_the_full_checks_copy(value)


@pytest.mark.parametrize(
    "value",
    [
        {"nan": float("nan")},
        {"tuple": (1,)},
        {"enum": Colour.RED},
        {"uuid": uuid.UUID(int=7)},
        {"ratio": Ratio(0.5)},
        {Name("k"): 1},
        {"a%": 1},
        {"fragment": orjson.Fragment(b"1")},
        nested(MAX_NESTING + 1),
        "text",
        None,
    ],
)
def test_plain_copy_declines_what_is_not_plain(value: Any) -> None:
    assert plain_copy(value) is NOT_PLAIN


def test_plain_copy_keeps_what_is_plain() -> None:
    value = {"a": [1, 2.5, -0.0, "x", None, True, {"b": []}], "c": {}}
    copy = plain_copy(value)
    assert copy == value and copy is not value and copy["a"] is not value["a"]
    assert plain_copy(nested(MAX_NESTING)) == nested(MAX_NESTING)


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
