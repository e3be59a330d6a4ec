"""A record's ``response``: stored with its call, read back, queried, updated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import (
    InvalidInput,
    InvalidLookup,
    InvalidPayload,
    LLMClient,
    LLMClientRequest,
    LLMResponse,
    Recorder,
    TokenUsage,
)
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._queries import MAX_PAYLOAD_BYTES
from llmreq_mongo._recording.spill import SpillReader, append_records
from llmreq_mongo._time import now_ms

UTC = dt.timezone.utc
Requests = LLMClientRequest.objects


def answer(**fields: Any) -> dict[str, Any]:
    """A chat completion response of the given shape, as the API returns it."""
    base: dict[str, Any] = {
        "status": 200,
        "body": {"id": "chatcmpl-1", "choices": [{"message": {"content": "Hi"}}]},
        "model": "gpt-4o",
        "response_id": "chatcmpl-1",
        "finish_reasons": ["stop"],
        "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
        "latency_ms": 250.0,
    }
    return {**base, **fields}


async def raw(record_id: Any) -> dict[str, Any]:
    found = await LLMClientRequest.get_pymongo_collection().find_one({"_id": record_id})
    assert found is not None
    return dict(found)


async def test_a_record_without_response_keeps_none(client: LLMClient) -> None:
    made = await Requests.create(llm_client=client, request={"q": 1}, session_key="s")
    assert made.response is None
    assert (await Requests.get(id=made.id)).response is None
    assert (await raw(made.id))["response"] is None
    assert "response" not in made.to_json()  # the reference's output, unchanged


async def test_create_with_a_dict_stores_and_reads_back_the_same_response(
    client: LLMClient,
) -> None:
    made = await Requests.create(llm_client=client, request={"q": 1}, response=answer())
    assert isinstance(made.response, LLMResponse)
    assert made.response.usage == TokenUsage(input_tokens=12, output_tokens=3, total_tokens=15)
    back = await Requests.get(id=made.id)
    assert back.response == made.response
    assert back.response is not None and back.response.usage is not None
    # A count the provider did not report stays None, never 0.
    assert back.response.usage.cache_read_input_tokens is None


async def test_the_response_body_is_stored_with_its_keys_escaped(client: LLMClient) -> None:
    body = {"a.b": 1, "$where": "sleep(1000)", "list": [{"$gt": ""}]}
    made = await Requests.create(
        llm_client=client, request={}, response=answer(body=body, usage=None)
    )
    stored = (await raw(made.id))["response"]
    assert stored["body"] == {"a%2Eb": 1, "%24where": "sleep(1000)", "list": [{"%24gt": ""}]}
    assert stored["usage"] is None
    back = await Requests.get(id=made.id)
    assert back.response is not None and back.response.body == body


async def test_a_model_instance_is_accepted_and_saved_changes_are_stored(
    client: LLMClient,
) -> None:
    made = await Requests.create(llm_client=client, request={})
    made.response = LLMResponse(latency_ms=5, status=502, error="upstream unreachable")
    await made.save()
    back = await Requests.get(id=made.id)
    assert back.response is not None
    assert (back.response.status, back.response.error) == (502, "upstream unreachable")


async def test_update_sets_and_clears_the_response(client: LLMClient) -> None:
    made = await Requests.create(llm_client=client, request={})
    await Requests.filter(id=made.id).update(response=answer(status=429))
    assert (await Requests.get(id=made.id)).response.status == 429  # type: ignore[union-attr]
    await Requests.filter(id=made.id).update(response=None)
    assert (await Requests.get(id=made.id)).response is None


@pytest.mark.parametrize(
    ("response", "error", "words"),
    [
        ({"latency_ms": "5"}, InvalidInput, "latency_ms"),
        ({"latency_ms": 1, "status": "200"}, InvalidInput, "status"),
        ({"latency_ms": 1, "usage": {"input_tokens": -1}}, InvalidInput, "input_tokens"),
        ({"latency_ms": 1, "colour": "red"}, InvalidInput, "colour"),
        ({"latency_ms": 1, "body": {"x": object()}}, InvalidPayload, "response.body"),
        ({"latency_ms": 1, "completed_at": dt.datetime(2026, 1, 1)}, InvalidInput, "naive"),
        ("ok", InvalidInput, "LLMResponse"),
    ],
)
async def test_a_bad_response_is_refused_and_nothing_is_written(
    client: LLMClient, response: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        await Requests.create(llm_client=client, request={}, response=response)
    assert await Requests.count() == 0


async def test_request_and_response_too_large_together_drop_the_body_not_the_request(
    client: LLMClient,
) -> None:
    half = "x" * (MAX_PAYLOAD_BYTES // 2 + 1024)
    made = await Requests.create(
        llm_client=client, request={"prompt": half}, response=answer(body={"text": half})
    )
    back = await Requests.get(id=made.id)
    assert back.request == {"prompt": half}
    assert back.response is not None
    assert back.response.truncated is True and back.response.body is None
    assert back.response.usage is not None and back.response.usage.output_tokens == 3


async def test_a_body_too_large_for_any_document_is_dropped_and_marked(
    client: LLMClient,
) -> None:
    made = await Requests.create(
        llm_client=client, request={}, response=answer(body="y" * (MAX_PAYLOAD_BYTES + 1))
    )
    back = await Requests.get(id=made.id)
    assert back.response is not None
    assert (back.response.truncated, back.response.body, back.response.status) == (
        True,
        None,
        200,
    )


@pytest.fixture
async def history(client: LLMClient) -> dict[str, Any]:
    return {
        "plain": (await Requests.create(llm_client=client, request={}, session_key="s")).id,
        "ok": (
            await Requests.create(
                llm_client=client,
                request={},
                session_key="s",
                response=answer(usage={"input_tokens": 10, "output_tokens": 2000}),
            )
        ).id,
        "failed": (
            await Requests.create(
                llm_client=client,
                request={},
                session_key="s",
                response=answer(status=503, model="gpt-4o-mini", usage=None, latency_ms=9.5),
            )
        ).id,
    }


async def test_the_lookups_of_the_issue_reach_the_response_fields(
    history: dict[str, Any],
) -> None:
    async def ids(**lookups: Any) -> set[Any]:
        return set(await Requests.filter(**lookups).values_list("id", flat=True).to_list())

    assert await ids(response__status__gte=500) == {history["failed"]}
    assert await ids(response__usage__output_tokens__gt=1000) == {history["ok"]}
    assert await ids(response__model="gpt-4o") == {history["ok"]}
    assert await ids(response__isnull=True) == {history["plain"]}
    assert await ids(response__isnull=False) == {history["ok"], history["failed"]}
    assert await ids(response__body__choices__0__message__content="Hi") == {
        history["ok"],
        history["failed"],
    }
    assert await ids(response__finish_reasons="stop") == {history["ok"], history["failed"]}


async def test_values_and_order_by_reach_the_response_fields(history: dict[str, Any]) -> None:
    rows = (
        await Requests.filter(response__isnull=False)
        .order_by("response__latency_ms")
        .values_list("id", "response__usage__input_tokens", "response__latency_ms")
        .to_list()
    )
    assert rows == [(history["failed"], None, 9.5), (history["ok"], 10, 250.0)]
    whole = await Requests.filter(id=history["ok"]).values_list("response", flat=True).first()
    assert whole is not None and whole["body"]["choices"][0]["message"]["content"] == "Hi"


@pytest.mark.parametrize(
    ("lookups", "words"),
    [
        ({"response__status__gte": "500"}, "expects a number"),
        ({"response__usage__output_tokens": True}, "expects a number"),
        ({"response__model": {"$ne": ""}}, "expects a string"),
        ({"response__colour": 1}, "has no field 'colour'"),
        ({"response__usage__colour": 1}, "'response__usage' has no field 'colour'"),
        ({"response": {"status": 200}}, "sub-document"),
        ({"response__status__year": 1}, "not a JSON field"),
        ({"response__completed_at__gt": dt.datetime(2026, 1, 1)}, "naive"),
    ],
)
async def test_lookups_on_the_response_are_typed(
    history: dict[str, Any], lookups: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidLookup, match=words):
        await Requests.filter(**lookups).count()


async def test_the_recorder_stores_a_response_in_the_same_document(client: LLMClient) -> None:
    async with Recorder() as recorder:
        with_dict = recorder.record(client, {"q": 1}, session_key="s", response=answer())
        with_model = await recorder.arecord(
            client, {"q": 2}, response=LLMResponse(latency_ms=1, error="client disconnected")
        )
        with pytest.raises(InvalidInput, match="latency_ms"):
            recorder.record(client, {"q": 3}, response={"status": 200})
    assert (await Requests.get(id=with_dict)).response == LLMResponse(
        **{**answer(), "completed_at": (await raw(with_dict))["response"]["completed_at"]}
    )
    failed = await Requests.get(id=with_model)
    assert failed.response is not None and failed.response.error == "client disconnected"
    assert await Requests.count() == 2


async def test_to_json_gives_the_response_in_json_types(client: LLMClient) -> None:
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    made = await Requests.create(llm_client=client, request={}, response=answer(completed_at=when))
    shown = made.to_json()["response"]
    assert shown["completed_at"] == "2026-03-04T05:06:07.891Z"
    assert shown["usage"]["input_tokens"] == 12
    assert shown["body"] == answer()["body"]


async def test_a_spilled_record_keeps_its_response_exactly(
    client: LLMClient, tmp_path: Path
) -> None:
    """The spill file and its replay keep the stored response, floats and times included."""
    checked = validate_request(
        client,
        {"q": "spilled"},
        "s",
        False,
        client_model=LLMClient,
        response=answer(latency_ms=12.0, ttft_ms=0.25, body={"a.b": [1.5, None, "$x"]}),
    )
    document = request_document(checked, record_id=ObjectId(), now=now_ms())
    spill = tmp_path / "spill.jsonl"
    append_records(spill, [document])
    (read,) = SpillReader(spill).read(10)
    assert read == document
    async with Recorder(spill_path=spill):
        pass  # stop() replays what it finds
    back = await Requests.get(id=document["_id"])
    assert back.response == checked.response
    assert (await raw(document["_id"]))["response"] == document["response"]
