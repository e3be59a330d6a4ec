"""Payloads: what is accepted, how it is converted, and what is refused (nothing written)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from llmreq_mongo import InvalidPayload, LLMClient, LLMClientRequest, PayloadTooLarge
from llmreq_mongo._queries import (
    MAX_DOCUMENT_BYTES,
    decode_payload,
    encode_payload,
    escape_key,
    normalize_payload,
)

JSON_SCHEMA_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.com/lookup.json",
            "$defs": {"id": {"type": "string", "$comment": "an id"}},
            "properties": {"id": {"$ref": "#/$defs/id", "$id": "#id"}},
        },
    },
}


@pytest.mark.parametrize(
    "payload",
    [
        None,
        True,
        0,
        -(2**63),
        2**63 - 1,
        1.5e308,
        5e-324,
        "",
        "héllo 🌍",
        [],
        {},
        [[[]]],
        {"message": "Hello, llm_client!"},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 1},
        JSON_SCHEMA_TOOL,
        {"a.b": {"c.d": 1}, "%": "%24", "100%": 1, "%2E": 2, "$": 3, "x$y": 4},
        {"$ref": "#/x", "$id": "y"},
        [{"$ref": "a", "$id": "b", "$db": "c"}],
    ],
    ids=repr,
)
async def test_payload_round_trips_exactly(client: LLMClient, payload: Any) -> None:
    req = await LLMClientRequest.objects.create(llm_client=client, request=payload)
    got = await LLMClientRequest.objects.get(id=req.id)
    assert got.request == payload
    assert req.request == payload


async def test_ref_and_id_do_not_come_back_as_dbref(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(llm_client=client, request=JSON_SCHEMA_TOOL)
    got = await LLMClientRequest.objects.get(id=req.id)
    node = got.request["function"]["parameters"]["properties"]["id"]
    assert node == {"$ref": "#/$defs/id", "$id": "#id"}
    assert isinstance(node, dict)


async def test_reference_encoder_conversions(client: LLMClient) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    req = await LLMClientRequest.objects.create(
        llm_client=client,
        request={
            "at": when,
            "day": dt.date(2026, 1, 2),
            "price": Decimal("1.10"),
            "id": ident,
            "pair": (1, 2),
            "tags": {"only"},
        },
    )
    got = await LLMClientRequest.objects.get(id=req.id)
    assert got.request == {
        "at": "2026-01-02T03:04:05.678901+00:00",
        "day": "2026-01-02",
        "price": "1.10",
        "id": "12345678-1234-5678-1234-567812345678",
        "pair": [1, 2],
        "tags": ["only"],
    }
    assert req.request == got.request


class Opaque:
    pass


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"bytes", "bytes is not JSON"),
        (Opaque(), "Opaque is not JSON"),
        (float("nan"), "not a JSON number"),
        ({"x": [float("inf")]}, r"^request\['x'\]\[0\]: inf is not a JSON number"),
        (-float("inf"), "not a JSON number"),
        ({1: "a"}, "keys must be strings"),
        ({("a",): 1}, "keys must be strings"),
        (2**63, "64 bits"),
        ({"big": -(2**63) - 1}, "64 bits"),
        ({"a\x00b": 1}, "NUL"),
        ("\ud800", "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        (bytearray(b"x"), "bytearray is not JSON"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v[:20],
)
async def test_non_json_is_refused_and_nothing_written(
    client: LLMClient, payload: Any, match: str
) -> None:
    with pytest.raises(InvalidPayload, match=match):
        await LLMClientRequest.objects.create(llm_client=client, request=payload)
    assert await LLMClientRequest.objects.count() == 0


async def test_nesting_beyond_the_server_limit_is_refused(client: LLMClient) -> None:
    deep: Any = "leaf"
    for _ in range(190):
        deep = {"d": deep}
    with pytest.raises(InvalidPayload, match="nests deeper"):
        await LLMClientRequest.objects.create(llm_client=client, request=deep)
    ok: Any = "leaf"
    for _ in range(100):
        ok = [ok]
    req = await LLMClientRequest.objects.create(llm_client=client, request=ok)
    assert (await LLMClientRequest.objects.get(id=req.id)).request == ok


async def test_payload_too_large_is_refused_before_sending(client: LLMClient) -> None:
    huge = {"blob": "x" * MAX_DOCUMENT_BYTES}
    with pytest.raises(PayloadTooLarge) as info:
        await LLMClientRequest.objects.create(llm_client=client, request=huge)
    assert info.value.size > info.value.limit
    assert str(info.value).startswith("request: the payload encodes to ")
    assert await LLMClientRequest.objects.count() == 0


async def test_a_payload_just_under_the_limit_is_stored(client: LLMClient) -> None:
    big = {"blob": "é" * 7_000_000}  # 14 MB of UTF-8
    req = await LLMClientRequest.objects.create(llm_client=client, request=big)
    got = await LLMClientRequest.objects.get(id=req.id)
    assert got.request == big


def test_size_estimate_matches_bson() -> None:
    import bson

    payload = {"a": [1, 2.5, "ü", None, True, {"$b.c": []}], "long": "x" * 1000}
    normalised, escaped = normalize_payload(payload)
    assert escaped
    encoded = len(bson.encode({"request": encode_payload(normalised)}))
    walker_size = _size_of(payload)
    assert abs(walker_size - encoded) <= 16
    assert normalised == payload


def _size_of(payload: Any) -> int:
    from llmreq_mongo._queries.payload import _Normalizer

    walker = _Normalizer()
    walker.value(payload, "", 0)
    return walker.size


def test_caller_changes_after_create_do_not_leak() -> None:
    payload = {"messages": [{"role": "user"}]}
    normalised, _ = normalize_payload(payload)
    payload["messages"][0]["role"] = "changed"
    assert normalised == {"messages": [{"role": "user"}]}


@pytest.mark.parametrize(
    ("key", "stored"),
    [
        ("plain", "plain"),
        ("$schema", "%24schema"),
        ("a.b", "a%2Eb"),
        ("50%", "50%25"),
        ("%24", "%2524"),
        ("x$", "x$"),
        ("$a.b%", "%24a%2Eb%25"),
    ],
)
def test_key_escaping_is_exact_and_reversible(key: str, stored: str) -> None:
    assert escape_key(key) == stored
    assert decode_payload({stored: 1}) == {key: 1}
