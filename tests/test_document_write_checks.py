"""A document's own writes (``save``, ``replace``, ``insert``, ``set``, ``update``) check
the record's fields as ``objects.create`` does: the same errors, nothing half-written,
the payload stored in the same form."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import pytest

from llmreq_mongo import (
    InvalidInput,
    InvalidPayload,
    LLMClient,
    LLMClientRequest,
    LLMReqError,
    LLMResponse,
)


async def _record(client: LLMClient) -> LLMClientRequest:
    return await LLMClientRequest.objects.create(
        llm_client=client, request={"model": "gpt-4o"}, session_key="s"
    )


async def _stored(doc: LLMClientRequest) -> dict[str, Any]:
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": doc.id})
    assert raw is not None
    return dict(raw)


ASSIGNMENTS: list[tuple[str, Callable[[LLMClientRequest], None], type[LLMReqError]]] = [
    ("a NaN", lambda d: setattr(d, "request", {"n": math.nan}), InvalidPayload),
    ("bytes", lambda d: setattr(d, "request", {"n": b"raw"}), InvalidPayload),
    ("an int past 64 bits", lambda d: setattr(d, "request", {"n": 2**64}), InvalidPayload),
    ("a change in place", lambda d: d.request.update(n=math.inf), InvalidPayload),
    ("an operator as key", lambda d: setattr(d, "session_key", {"$gt": ""}), InvalidInput),
    ("a long key", lambda d: setattr(d, "session_key", "k" * 256), InvalidInput),
    ("a str flag", lambda d: setattr(d, "is_aggregation", "yes"), InvalidInput),
    ("a bad response", lambda d: setattr(d, "response", {"latency_ms": -1}), InvalidInput),
]


@pytest.mark.parametrize("method", ["save", "replace"])
@pytest.mark.parametrize(
    ("change", "refusal"),
    [(change, refusal) for _, change, refusal in ASSIGNMENTS],
    ids=[name for name, _, _ in ASSIGNMENTS],
)
async def test_save_and_replace_refuse_what_create_refuses(
    client: LLMClient,
    method: str,
    change: Callable[[LLMClientRequest], None],
    refusal: type[LLMReqError],
) -> None:
    doc = await _record(client)
    before = await _stored(doc)
    change(doc)
    with pytest.raises(refusal):
        await getattr(doc, method)()
    assert await _stored(doc) == before  # nothing written


async def test_save_stores_the_payload_as_create_does(client: LLMClient) -> None:
    doc = await _record(client)
    doc.request = {"$schema": 1, "a.b": (1, 2)}
    # A dict of the fields, as the docs allow (the annotation names the stored type).
    doc.response = cast(Any, {"status": 200, "latency_ms": 5.0, "body": {"$ref": "x"}})
    await doc.save()
    again = await LLMClientRequest.objects.get(id=doc.id)
    assert again.request == {"$schema": 1, "a.b": [1, 2]}
    assert isinstance(again.response, LLMResponse) and again.response.body == {"$ref": "x"}
    created = await LLMClientRequest.objects.create(
        llm_client=client, request=doc.request, session_key="s", response=doc.response
    )
    assert (await _stored(created))["request"] == (await _stored(doc))["request"]


async def test_save_checks_a_response_body_changed_in_place(client: LLMClient) -> None:
    doc = await LLMClientRequest.objects.create(
        llm_client=client,
        request={},
        response=LLMResponse(status=200, latency_ms=1.0, body={"a": 1}),
    )
    assert doc.response is not None and isinstance(doc.response.body, dict)
    doc.response.body["a"] = math.nan
    with pytest.raises(InvalidPayload, match=r"response\.body\['a'\]"):
        await doc.save()


async def test_set_checks_and_escapes_the_fields_it_sets(client: LLMClient) -> None:
    doc = await _record(client)
    await doc.set({LLMClientRequest.request: {"$x": 1}, LLMClientRequest.session_key: "t"})
    stored = await _stored(doc)
    assert stored["request"] == {"%24x": 1} and stored["session_key"] == "t"
    assert (await LLMClientRequest.objects.get(id=doc.id)).request == {"$x": 1}
    await doc.update({"$set": {"is_aggregation": True}})
    assert (await _stored(doc))["is_aggregation"] is True


@pytest.mark.parametrize(
    ("update", "refusal"),
    [
        ({"$set": {"request": {"n": math.nan}}}, InvalidPayload),
        ({"$set": {"session_key": {"$gt": ""}}}, InvalidInput),
        ({"$set": {"is_aggregation": 1}}, InvalidInput),
        ({"$set": {"response": {"status": "x", "latency_ms": 1.0}}}, InvalidInput),
        ({"$set": {"request.model": "gpt-5"}}, InvalidInput),
        ({"$unset": {"request": ""}}, InvalidInput),
        ({"$set": {"llm_client_id": None}}, InvalidInput),
        ({"$rename": {"session_key": "other"}}, InvalidInput),
    ],
    ids=["nan", "operator key", "int flag", "bad response", "path", "unset", "client", "rename"],
)
async def test_update_refuses_unchecked_writes(
    client: LLMClient, update: dict[str, Any], refusal: type[LLMReqError]
) -> None:
    doc = await _record(client)
    before = await _stored(doc)
    with pytest.raises(refusal):
        await doc.update(update)
    assert await _stored(doc) == before


async def test_the_constructor_raises_the_checks_own_error(client: LLMClient) -> None:
    with pytest.raises(InvalidPayload, match=r"request\['n'\]"):
        LLMClientRequest(llm_client=client, request={"n": math.inf})
    with pytest.raises(InvalidInput, match="cannot create LLMClientRequest"):
        LLMClientRequest(llm_client=client, session_key=5)
