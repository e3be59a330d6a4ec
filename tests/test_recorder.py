"""The background recorder against a running server: batching, flush, on_full, retries."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from bson import ObjectId

import recorder_helpers
from llmreq_mongo import (
    Handle,
    InvalidInput,
    InvalidPayload,
    LLMClient,
    LLMClientRequest,
    Recorder,
    RecorderStats,
)
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import (
    RecorderClosed,
    RecorderFull,
    RecordRejected,
    RecordsNotWritten,
)

# This module's waits give up after 20 s.
wait_until = functools.partial(recorder_helpers.wait_until, seconds=20.0)


async def stored(session_key: str) -> list[dict[str, Any]]:
    coll = LLMClientRequest.get_pymongo_collection()
    return await coll.find({"session_key": {"$eq": session_key}}).sort("_id", 1).to_list()


async def test_record_stores_exactly_what_create_stores(client: LLMClient) -> None:
    payload = {"model": "gpt-4o", "$schema": "x", "a.b": [1, 2.5, None, {"%": True}]}
    created = await LLMClientRequest.objects.create(
        llm_client=client, request=payload, session_key="same", is_aggregation=True
    )
    async with Recorder() as recorder:
        before = now_ms()
        record_id = recorder.record(client, payload, session_key="same", is_aggregation=True)
        after = now_ms()
        assert isinstance(record_id, ObjectId)
        await recorder.flush()
    coll = LLMClientRequest.get_pymongo_collection()
    raw_created = await coll.find_one({"_id": created.id})
    raw_recorded = await coll.find_one({"_id": record_id})
    assert raw_created is not None and raw_recorded is not None
    assert list(raw_recorded) == list(raw_created)
    for field in raw_created:
        if field not in ("_id", "created_at", "updated_at"):
            assert raw_recorded[field] == raw_created[field], field
    assert raw_recorded["created_at"] == raw_recorded["updated_at"]
    assert raw_recorded["created_at"].microsecond % 1000 == 0
    assert before <= raw_recorded["created_at"] <= after
    got = await LLMClientRequest.objects.get(pk=record_id)
    assert got.request == payload


async def test_record_validates_as_create_does(client: LLMClient) -> None:
    unsaved = LLMClient(name="unsaved")
    bad: list[dict[str, Any]] = [
        {"llm_client": unsaved, "request": {}},
        {"llm_client": None, "request": {}},
        {"llm_client": client, "request": {"b": b"bytes"}},
        {"llm_client": client, "request": {"x": float("nan")}},
        {"llm_client": client, "request": {1: "non-string key"}},
        {"llm_client": client, "request": {}, "session_key": {"$ne": ""}},
        {"llm_client": client, "request": {}, "session_key": "k" * 256},
        {"llm_client": client, "request": {}, "is_aggregation": "yes"},
    ]
    async with Recorder() as recorder:
        for fields in bad:
            with pytest.raises(InvalidInput) as by_create:
                await LLMClientRequest.objects.create(**fields)
            with pytest.raises(InvalidInput) as by_record:
                recorder.record(
                    fields["llm_client"],
                    fields["request"],
                    session_key=fields.get("session_key"),
                    is_aggregation=fields.get("is_aggregation", False),
                )
            assert type(by_record.value) is type(by_create.value)
            assert str(by_record.value) == str(by_create.value)
        with pytest.raises(InvalidPayload):
            await recorder.arecord(client, {"b": b"bytes"})
        assert recorder.stats.accepted == 0
    assert await LLMClientRequest.objects.count() == 0


async def test_batches_by_size(client: LLMClient) -> None:
    batches: list[list[ObjectId]] = []
    async with Recorder(max_batch=10, flush_interval=60, after_write=batches.append) as recorder:
        ids = [recorder.record(client, {"n": n}, session_key="size") for n in range(25)]
        await wait_until(lambda: len(batches) == 2)
        assert batches == [ids[:10], ids[10:20]]
        assert recorder.stats.queued == 5  # the rest waits for a full batch or the interval
        await recorder.flush()
        assert batches == [ids[:10], ids[10:20], ids[20:]]
    assert [doc["_id"] for doc in await stored("size")] == ids


async def test_batches_by_time(client: LLMClient) -> None:
    batches: list[list[ObjectId]] = []
    async with Recorder(max_batch=1000, flush_interval=0.05, after_write=batches.append) as rec:
        ids = [rec.record(client, {"n": n}, session_key="time") for n in range(3)]
        await wait_until(lambda: bool(batches))  # no flush(): the interval sends it
        assert batches == [ids]
        assert rec.stats.queued == 0
        assert rec.stats.written == 3


async def test_ids_are_ordered_as_recorded(client: LLMClient) -> None:
    async with Recorder(max_batch=64) as recorder:
        ids = [recorder.record(client, {"n": n}, session_key="order") for n in range(1000)]
    assert len(set(ids)) == 1000
    # ObjectIds sort in creation order within a second, except when the
    # driver's 24-bit counter wraps: compare their times, not the ids.
    assert [i.generation_time for i in ids] == sorted(i.generation_time for i in ids)
    docs = sorted(await stored("order"), key=lambda doc: doc["request"]["n"])
    assert [doc["_id"] for doc in docs] == ids
    times = [doc["created_at"] for doc in docs]
    assert times == sorted(times)


async def test_flush_returns_once_everything_before_it_is_stored(client: LLMClient) -> None:
    async with Recorder(max_batch=500, flush_interval=60) as recorder:
        await recorder.flush()  # nothing queued: returns at once
        for n in range(1200):
            recorder.record(client, {"n": n}, session_key="flush")
        await recorder.flush()
        assert await LLMClientRequest.objects.filter(session_key="flush").count() == 1200
        stats = recorder.stats
        assert (stats.accepted, stats.queued, stats.written) == (1200, 0, 1200)


async def test_stop_writes_a_full_queue(client: LLMClient) -> None:
    # What stop() does with a full queue, not how fast: a loaded machine may
    # take longer than the default stop_timeout of 10 s to write 2,000 records.
    recorder = Recorder(
        max_batch=500, max_queue=2000, on_full="raise", flush_interval=60, stop_timeout=300
    )
    await recorder.start()
    for n in range(2000):
        recorder.record(client, {"n": n}, session_key="full")
    with pytest.raises(RecorderFull):
        recorder.record(client, {"n": -1}, session_key="full")
    await recorder.stop()
    assert await LLMClientRequest.objects.filter(session_key="full").count() == 2000
    assert recorder.stats.written == 2000 and recorder.stats.queued == 0
    with pytest.raises(RecorderClosed):
        recorder.record(client, {})
    with pytest.raises(RecorderClosed):
        await recorder.flush()
    with pytest.raises(RecorderClosed):
        await recorder.start()
    await recorder.stop()  # stopping twice is harmless


async def test_on_full_raise(client: LLMClient) -> None:
    async with Recorder(max_batch=5, max_queue=5, on_full="raise") as recorder:
        ids = [recorder.record(client, {"n": n}, session_key="raise") for n in range(5)]
        with pytest.raises(RecorderFull, match="max_queue"):
            recorder.record(client, {"n": 5}, session_key="raise")
        with pytest.raises(RecorderFull):
            await recorder.arecord(client, {"n": 5}, session_key="raise")
        await recorder.flush()
        ids.append(recorder.record(client, {"n": 6}, session_key="raise"))  # room again
    assert [doc["_id"] for doc in await stored("raise")] == ids


async def test_on_full_drop_counts_and_reports(client: LLMClient) -> None:
    dropped: list[dict[str, Any]] = []
    async with Recorder(max_batch=5, max_queue=5, on_full="drop", on_drop=dropped.append) as rec:
        kept = [rec.record(client, {"n": n}, session_key="drop") for n in range(5)]
        lost = rec.record(client, {"n": 5}, session_key="drop")
        assert rec.stats.dropped == 1
        assert [doc["_id"] for doc in dropped] == [lost]
        assert dropped[0]["request"] == {"n": 5}
        await rec.flush()
    assert [doc["_id"] for doc in await stored("drop")] == kept


async def test_on_full_block_waits_in_arecord(client: LLMClient) -> None:
    async with Recorder(max_batch=5, max_queue=5, on_full="block") as recorder:
        ids = [recorder.record(client, {"n": n}, session_key="block") for n in range(5)]
        with pytest.raises(RecorderFull, match="arecord"):
            recorder.record(client, {"n": 5}, session_key="block")
        waiting = asyncio.ensure_future(recorder.arecord(client, {"n": 5}, session_key="block"))
        await asyncio.sleep(0)
        assert not waiting.done()  # the queue is still full: the batch is not written yet
        ids.append(await waiting)
        assert recorder.stats.accepted == 6 and recorder.stats.dropped == 0
    assert [doc["_id"] for doc in await stored("block")] == ids


async def test_concurrent_records_from_many_tasks(client: LLMClient) -> None:
    async def producer(recorder: Recorder, task: int) -> list[ObjectId]:
        ids = []
        for n in range(100):
            if n % 2:
                ids.append(await recorder.arecord(client, {"t": task, "n": n}, session_key="many"))
                continue
            try:
                ids.append(recorder.record(client, {"t": task, "n": n}, session_key="many"))
            except RecorderFull:
                ids.append(await recorder.arecord(client, {"t": task, "n": n}, session_key="many"))
            await asyncio.sleep(0)
        return ids

    async with Recorder(max_batch=50, max_queue=200, flush_interval=0.01) as recorder:
        results = await asyncio.gather(*(producer(recorder, t) for t in range(40)))
    every = [record_id for ids in results for record_id in ids]
    assert len(set(every)) == 4000
    docs = await stored("many")
    assert {doc["_id"] for doc in docs} == set(every) and len(docs) == 4000
    for task, ids in enumerate(results):  # each task's records in its own order
        mine = sorted(
            (doc for doc in docs if doc["request"]["t"] == task), key=lambda d: d["request"]["n"]
        )
        assert [doc["_id"] for doc in mine] == ids
        times = [doc["created_at"] for doc in mine]
        assert times == sorted(times)
    assert recorder.stats.written == 4000 and recorder.stats.dropped == 0


async def test_before_record_redacts_and_after_write_sees_every_id(client: LLMClient) -> None:
    def redact(payload: Any) -> Any:
        return {k: ("***" if k == "api_key" else v) for k, v in payload.items()}

    written: list[ObjectId] = []
    async with Recorder(before_record=redact, after_write=written.extend) as recorder:
        ids = [
            recorder.record(client, {"api_key": "sk-secret", "n": n}, session_key="redact")
            for n in range(3)
        ]
    assert written == ids
    assert [doc["request"] for doc in await stored("redact")] == [
        {"api_key": "***", "n": n} for n in range(3)
    ]


async def test_a_failing_callback_is_logged_and_ignored(
    client: LLMClient, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ids: list[ObjectId]) -> None:
        raise RuntimeError("callback bug")

    async with Recorder(after_write=broken) as recorder:
        recorder.record(client, {"n": 1}, session_key="cb")
        await recorder.flush()
        recorder.record(client, {"n": 2}, session_key="cb")
    assert len(await stored("cb")) == 2
    assert "after_write callback failed" in caplog.text


async def test_a_rejected_record_fails_alone(client: LLMClient, llmreq_db: Handle) -> None:
    await llmreq_db.database.command(
        {
            "collMod": LLMClientRequest.get_collection_name(),
            "validator": {
                "$jsonSchema": {
                    "properties": {
                        "request": {
                            "bsonType": "object",
                            "properties": {"n": {"bsonType": "int", "maximum": 100}},
                        }
                    }
                }
            },
        }
    )
    rejected: list[tuple[dict[str, Any], RecordRejected]] = []
    async with Recorder(on_error=lambda doc, err: rejected.append((doc, err))) as recorder:
        ids = [recorder.record(client, {"n": n}, session_key="valid") for n in range(5)]
        bad = recorder.record(client, {"n": 1000}, session_key="valid")
        ids += [recorder.record(client, {"n": n}, session_key="valid") for n in range(5, 10)]
        with pytest.raises(RecordsNotWritten) as info:
            await recorder.flush()
        assert info.value.count == 1
        ids.append(recorder.record(client, {"n": 11}, session_key="valid"))  # still running
    assert [doc["_id"] for doc in await stored("valid")] == ids
    assert [doc["_id"] for doc, _ in rejected] == [bad]
    error = rejected[0][1]
    assert error.record_id == bad and error.code == 121  # DocumentValidationFailure
    stats = recorder.stats
    assert (stats.written, stats.failed, stats.retried) == (11, 1, 0)
    assert stats.last_error is error


async def test_stats_snapshot(client: LLMClient) -> None:
    recorder = Recorder()
    assert recorder.stats == RecorderStats(0, 0, 0, 0, 0, 0, 0, 0, 0, None)
    async with recorder:
        recorder.record(client, {})
        snapshot = recorder.stats
        assert snapshot.accepted == 1 and snapshot.queued == 1
    assert snapshot.queued == 1  # a snapshot does not change afterwards
    assert recorder.stats.queued == 0 and recorder.stats.written == 1


async def test_not_running(client: LLMClient) -> None:
    recorder = Recorder()
    with pytest.raises(RecorderClosed, match="start it"):
        recorder.record(client, {})
    with pytest.raises(RecorderClosed):
        await recorder.arecord(client, {})
    with pytest.raises(RecorderClosed):
        await recorder.flush()
    await recorder.stop()  # never started: nothing to do


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_batch": 0}, "max_batch"),
        ({"max_batch": True}, "max_batch"),
        ({"max_queue": 1.5}, "max_queue"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"flush_interval": float("inf")}, "flush_interval"),
        ({"on_full": "wait"}, "on_full"),
        ({"spill_path": 42}, "spill_path"),
        ({"before_record": "redact"}, "before_record"),
        ({"after_write": 1}, "after_write"),
        ({"on_drop": 1}, "on_drop"),
        ({"on_error": 1}, "on_error"),
        ({"retry_deadline": 0}, "retry_deadline"),
        ({"stop_timeout": "10"}, "stop_timeout"),
    ],
)
def test_options_are_checked_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Recorder(**options)


def test_spill_path_must_not_be_a_directory(tmp_path: Any) -> None:
    with pytest.raises(InvalidInput, match="directory"):
        Recorder(spill_path=tmp_path)


def test_an_empty_spill_path_is_refused_as_empty() -> None:
    # Not as "spill_path . is a directory": Path("") is the current directory.
    with pytest.raises(InvalidInput, match="spill_path is empty: give a file path, or None"):
        Recorder(spill_path="")
