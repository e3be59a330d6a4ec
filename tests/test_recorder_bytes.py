"""Records encoded once: ``max_queue_bytes``, the snapshot ``record()`` takes, identical bytes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from typing import Any

import bson
import pytest
from bson import DBRef, ObjectId
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, LLMResponse, Recorder
from llmreq_mongo._capture import ResponseParser, has_plain_body
from llmreq_mongo._documents import (
    EncodedRecord,
    encode_request,
    new_record_id,
    records,
    request_document,
    validate_request,
)
from llmreq_mongo._queries import (
    MAX_PAYLOAD_BYTES,
    checked_payload,
    encode_payload,
    normalize_payload,
)
from llmreq_mongo._queries.payload import _fast_check, _fast_normalize, _NotPlainJSON
from llmreq_mongo._recording.options import DEFAULT_MAX_QUEUE_BYTES
from llmreq_mongo._recording.queued import QueuedRecord, plain
from llmreq_mongo._recording.spill import encode_line
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import RecorderFull
from recorder_helpers import stored_ids
from test_recorder_hot_path import json_like

UTC = dt.timezone.utc
# One record of ``big`` is about 10 KB encoded; a queue of 25 KB holds two.
BIG = "x" * 10_000
LIMIT = 25_000


def big(n: int) -> dict[str, Any]:
    return {"n": n, "text": BIG}


def types(value: Any) -> Any:
    """The shape of ``value`` with each leaf's type (and a datetime's tzinfo)."""
    if isinstance(value, dict):
        return {key: types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [types(item) for item in value]
    return type(value), getattr(value, "tzinfo", None)


PAYLOADS: list[Any] = [
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "héllo"}]},
    {"$schema": "x", "a.b": [1, 2**40, -0.0, None, True, {"%": 2.5}]},
    [1, "two", {"three": 3}],
    None,
    # The encoder writes a top-level "_id" first: kept in its place here.
    {"model": "m", "_id": 7},
    {},
]


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_encoded_record_is_the_document_bson_encodes(client: LLMClient, payload: Any) -> None:
    response = {"status": 200, "body": {"id": "r", "n": 2**35}, "latency_ms": 12.5}
    backfill = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    before_1970 = dt.datetime(1969, 7, 20, 20, 17, 40, 999000, tzinfo=UTC)
    later = backfill + dt.timedelta(days=400, milliseconds=1)
    cases: list[tuple[Any, bool, dict[str, Any]]] = [
        ("k", False, {}),
        ("k", False, {"response": response}),
        ("k", False, {"created_at": backfill}),
        (None, True, {"created_at": before_1970, "updated_at": later}),
        ("clé-é-🔑", True, {"response": {**response, "body": None}}),
        ("", False, {"fit": False, "copy": False, "response": response}),
    ]
    for key, aggregation, extra in cases:
        checked = validate_request(
            client, payload, key, aggregation, client_model=LLMClient, **extra
        )
        record_id, now = new_record_id(), now_ms()
        document = request_document(checked, record_id=record_id, now=now)
        encoded = encode_request(checked, record_id=record_id, now=now)
        assert encoded == bson.encode(document)
        queued = QueuedRecord(encoded, record_id, checked.client_id)
        # What on_error, on_drop and the spill file get: the document itself.
        back = plain(queued)
        assert back == document and list(back) == list(document)
        assert types(back) == types(document)
        assert isinstance(back["llm_client"], DBRef)
        assert encode_line(queued, "db.coll") == encode_line(document, "db.coll")
        assert queued["_id"] == record_id and queued["llm_client_id"] == checked.client_id


def test_new_record_ids_are_unique_and_in_order() -> None:
    ids = [new_record_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    made = ids[-1].generation_time
    assert abs((dt.datetime.now(UTC) - made).total_seconds()) < 5


def test_a_forked_child_makes_other_ids() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    new_record_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id made here, then leave at once
        os.close(read)
        os.write(write, new_record_id().binary)
        os._exit(0)
    os.close(write)
    child = ObjectId(os.read(read, 12))
    os.close(read)
    os.waitpid(pid, 0)
    mine = new_record_id()
    assert child.binary[4:9] != mine.binary[4:9]  # the process's random part


def test_now_ms_is_the_current_millisecond() -> None:
    before = dt.datetime.now(UTC)
    got = now_ms()
    after = dt.datetime.now(UTC)
    assert got.tzinfo is UTC and got.microsecond % 1000 == 0
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= got <= after


async def test_a_payload_changed_after_record_is_stored_as_recorded(client: LLMClient) -> None:
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": "before"}]}
    async with Recorder(flush_interval=60) as recorder:
        record_id = recorder.record(client, payload, session_key="snapshot")
        payload["messages"][0]["content"] = "after"
        payload["extra"] = True
        await recorder.flush()
    got = await LLMClientRequest.objects.get(pk=record_id)
    assert got.request == {"messages": [{"role": "user", "content": "before"}]}


# -- max_queue_bytes ---------------------------------------------------------------------


def test_the_default_bound() -> None:
    assert DEFAULT_MAX_QUEUE_BYTES == 256 * 1024 * 1024


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "max_queue_bytes must be a positive integer, got 0"),
        (True, "max_queue_bytes must be a positive integer, got True"),
        (1.5, "max_queue_bytes must be a positive integer, got 1.5"),
        ("1MB", "max_queue_bytes must be a positive integer, got '1MB'"),
    ],
)
def test_max_queue_bytes_is_checked_at_construction(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Recorder(max_queue_bytes=value)
    assert message in str(info.value)


async def test_a_burst_of_large_records_is_bounded_by_bytes(client: LLMClient) -> None:
    logging.getLogger("llmreq_mongo.recorder").setLevel(logging.ERROR)
    async with Recorder(max_queue=1000, max_queue_bytes=LIMIT, on_full="drop") as recorder:
        # No await in between: the writer cannot drain, so only the bound holds.
        ids = [recorder.record(client, big(n), session_key="burst") for n in range(50)]
        stats = recorder.stats
        assert stats.queued == 2 and stats.dropped == 48
        assert 2 * 10_000 < stats.queued_bytes <= LIMIT
        await recorder.flush()
        assert recorder.stats.queued_bytes == 0
    assert await stored_ids("burst") == ids[:2]


async def test_bytes_full_raise(client: LLMClient) -> None:
    async with Recorder(max_queue_bytes=LIMIT, on_full="raise", flush_interval=60) as recorder:
        ids = [recorder.record(client, big(n), session_key="bytes-raise") for n in range(2)]
        with pytest.raises(RecorderFull, match="max_queue_bytes"):
            recorder.record(client, big(2), session_key="bytes-raise")
        with pytest.raises(RecorderFull, match="max_queue_bytes"):
            await recorder.arecord(client, big(2), session_key="bytes-raise")
        # A small record still fits beside the two large ones.
        ids.append(recorder.record(client, {"n": "small"}, session_key="bytes-raise"))
        assert recorder.stats.accepted == 3 and recorder.stats.dropped == 0
        await recorder.flush()
        ids.append(recorder.record(client, big(3), session_key="bytes-raise"))  # room again
    assert await stored_ids("bytes-raise") == ids


async def test_bytes_full_drop_counts_and_reports(client: LLMClient) -> None:
    logging.getLogger("llmreq_mongo.recorder").setLevel(logging.ERROR)
    dropped: list[dict[str, Any]] = []
    async with Recorder(
        max_queue_bytes=LIMIT, on_full="drop", on_drop=dropped.append, flush_interval=60
    ) as recorder:
        kept = [recorder.record(client, big(n), session_key="bytes-drop") for n in range(2)]
        lost = recorder.record(client, big(2), session_key="bytes-drop")
        assert recorder.stats.dropped == 1
        assert [doc["_id"] for doc in dropped] == [lost]
        assert type(dropped[0]) is dict and dropped[0]["request"] == big(2)
        await recorder.flush()
    assert await stored_ids("bytes-drop") == kept


async def test_bytes_full_block_waits_in_arecord(client: LLMClient) -> None:
    async with Recorder(max_queue_bytes=LIMIT, on_full="block", flush_interval=60) as recorder:
        ids = [recorder.record(client, big(n), session_key="bytes-block") for n in range(2)]
        with pytest.raises(RecorderFull, match="arecord"):
            recorder.record(client, big(2), session_key="bytes-block")
        waiting = asyncio.ensure_future(recorder.arecord(client, big(2), session_key="bytes-block"))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # no room until the writer sends the first two
        await recorder.flush()  # sends them; the waiting record then fits
        ids.append(await waiting)
        assert recorder.stats.accepted == 3 and recorder.stats.dropped == 0
    assert await stored_ids("bytes-block") == ids


async def test_a_record_larger_than_the_bound_goes_through_an_empty_queue(
    client: LLMClient,
) -> None:
    async with Recorder(max_queue_bytes=1000, on_full="block") as recorder:
        first = recorder.record(client, big(0), session_key="oversize")
        with pytest.raises(RecorderFull):
            recorder.record(client, big(1), session_key="oversize")
        second = await recorder.arecord(client, big(1), session_key="oversize")
        await recorder.flush()
    assert await stored_ids("oversize") == [first, second]


async def test_request_and_body_too_large_together_drop_the_body_on_every_path(
    client: LLMClient,
) -> None:
    half = "x" * (MAX_PAYLOAD_BYTES // 2 + 1024)
    done = dt.datetime(2024, 5, 1, tzinfo=UTC)
    response = {"status": 200, "body": {"text": half}, "latency_ms": 5.0, "completed_at": done}
    # Checked at once, or when encoding: the same document either way.
    record_id, now = new_record_id(), now_ms()
    at_once = validate_request(
        client, {"prompt": half}, None, False, client_model=LLMClient, response=response
    )
    deferred = validate_request(
        client, {"prompt": half}, None, False, client_model=LLMClient, response=response, fit=False
    )
    encoded = encode_request(deferred, record_id=record_id, now=now)
    assert encoded == encode_request(at_once, record_id=record_id, now=now)
    assert deferred.response is not None and deferred.response.truncated is True
    made = await LLMClientRequest.objects.create(
        llm_client=client, request={"prompt": half}, response=response
    )
    assert made.response is not None and made.response.body is None and made.response.truncated
    async with Recorder() as recorder:
        recorded = recorder.record(client, {"prompt": half}, response=response)
        await recorder.flush()
    back = await LLMClientRequest.objects.get(pk=recorded)
    assert back.request == {"prompt": half}
    assert back.response is not None
    assert back.response.truncated is True and back.response.body is None


# -- the walk that only looks ---------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(json_like)
def test_the_looking_walk_accepts_what_the_fast_walk_accepts(value: Any) -> None:
    try:
        fast: tuple[Any, bool] | None = _fast_normalize(value)
    except _NotPlainJSON:
        fast = None
    try:
        escaped: bool | None = _fast_check(value)
    except _NotPlainJSON:
        escaped = None
    assert (fast is None) == (escaped is None)
    if fast is not None:
        assert fast[1] == escaped


@settings(max_examples=100, deadline=None)
@given(json_like)
def test_checked_payload_stores_and_refuses_as_normalize_payload(value: Any) -> None:
    refused: InvalidInput | None = None
    try:
        expected = normalize_payload(value)
    except InvalidInput as exc:
        refused = exc
    if refused is not None:
        with pytest.raises(type(refused)) as info:
            checked_payload(value)
        assert str(info.value) == str(refused)
        return
    got = checked_payload(value)
    assert got[1] == expected[1]
    stored, wanted = encode_payload(got[0]), encode_payload(expected[0])
    assert bson.encode({"request": stored}) == bson.encode({"request": wanted})


def test_an_encoded_record_answers_its_ids_without_decoding_the_bytes() -> None:
    # insert_one and insert_many read each document's _id back: the attribute
    # answers, not a decode of the whole record. Any other key is read from the bytes.
    record_id, client_id = ObjectId(), ObjectId()
    encoded = bson.encode({"_id": ObjectId(), "llm_client_id": ObjectId(), "request": {"a": 1}})
    record = EncodedRecord(encoded, record_id, client_id)
    assert record["_id"] == record_id and record.get("_id") == record_id
    assert record["llm_client_id"] == client_id
    assert dict(record["request"]) == {"a": 1}
    assert record.raw == encoded and record.size == len(encoded)


@pytest.mark.parametrize("direct", [True, False], ids=["slots set directly", "driver's init"])
def test_an_encoded_record_is_the_raw_document_of_its_bytes(
    direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its RawBSONDocument state is set without the driver's __init__ when the
    # driver keeps it in the slots expected, and by that __init__ otherwise:
    # either way the record reads, compares and decodes as the driver's own.
    monkeypatch.setattr(records, "_RAW_SLOTS", direct and records._RAW_SLOTS)
    assert records._RAW_SLOTS is direct
    record_id = ObjectId()
    encoded = bson.encode({"_id": record_id, "request": {"a": [1, "b"]}, "n": None})
    record, raw = EncodedRecord(encoded, record_id, ObjectId()), RawBSONDocument(encoded)
    assert record.raw == raw.raw and record == raw
    assert dict(record.items()) == dict(raw.items()) and record["n"] is None
    assert type(record["request"]) is type(raw["request"])  # decoded with the same options
    assert bson.encode(record) == encoded  # the driver sends the bytes as they are


def _parsed(text: bytes) -> LLMResponse:
    parser = ResponseParser("/v1/chat/completions", "application/json")
    parser.feed(text)
    return parser.finish(status=200)


async def test_a_body_the_capture_vouched_for_is_stored_as_any_body(client: LLMClient) -> None:
    # The capture's own decoding spares the record its walk of the body: the
    # stored bytes are those of the same response built by hand, which is walked.
    text = b'{"id": "r", "$schema": "s", "a.b": [1, 2.5, null], "choices": []}'
    vouched = _parsed(text)
    by_hand = LLMResponse(**{**vouched.model_dump(), "body": json.loads(text)})
    record_id, now = new_record_id(), now_ms()
    encoded = []
    for response in (vouched, by_hand):
        assert has_plain_body(response) is (response is vouched)
        checked = validate_request(
            client,
            PAYLOADS[0],
            "k",
            False,
            client_model=LLMClient,
            response=response,
            fit=False,
            copy=False,
        )
        encoded.append(encode_request(checked, record_id=record_id, now=now))
    assert encoded[0] == encoded[1]
    body = bson.decode(encoded[0])["response"]["body"]
    assert list(body) == ["id", "%24schema", "a%2Eb", "choices"]  # stored escaped


def test_a_vouched_body_skips_the_walk_once_and_only_while_in_place() -> None:
    first, second, third = (_parsed(b'{"id": "%d"}' % n) for n in range(3))
    # The last two are held (a call's request and its answer): the first is gone.
    assert not has_plain_body(first)
    assert has_plain_body(third) and has_plain_body(second)
    assert not has_plain_body(third)  # asked once: the record has it now
    replaced = _parsed(b'{"id": "t"}')
    replaced.body = {"id": "t"}  # assigned: another object, walked as any body is
    assert not has_plain_body(replaced)
    assert has_plain_body(LLMResponse(latency_ms=1.0))  # no body: nothing to walk
