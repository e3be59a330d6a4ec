"""The recorder while MongoDB goes away: restart, spill file, replay, stop without a spill.

These tests stop and restart a server of their own (an embedded engine in a
child process, which comes back on the same port with its data), so they run
the same way whether or not ``MONGODB_URI`` is set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, Recorder, init
from llmreq_mongo._recording.spill import SpillReader, append_records, corrupt_path
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import RecordsNotWritten
from recorder_helpers import stored_ids, wait_until

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedMongo]:
    async with EmbeddedMongo(tmp_path_factory.mktemp("outage"), process=True) as engine:
        yield engine


@pytest.fixture
async def handle(engine: EmbeddedMongo) -> AsyncIterator[Handle]:
    await engine.start()  # a test may have left it stopped
    name = f"llmreq_test_{uuid.uuid4().hex[:12]}"
    handle = await init(engine.uri, database=name)
    try:
        yield handle
    finally:
        await engine.start()
        await handle.client.drop_database(name)
        await handle.close()


@pytest.fixture
async def bot(handle: Handle) -> LLMClient:
    return await LLMClient.objects.create(name="outage-bot")


async def test_server_restart_mid_run_loses_and_duplicates_nothing(
    engine: EmbeddedMongo, bot: LLMClient
) -> None:
    async with Recorder(max_batch=500, retry_deadline=120, stop_timeout=60) as recorder:
        ids = [recorder.record(bot, {"n": n}, session_key="restart") for n in range(2000)]
        await asyncio.sleep(0.05)  # the writer is on its first batches
        await engine.stop()
        ids += [recorder.record(bot, {"n": n}, session_key="restart") for n in range(2000, 5000)]
        assert recorder.stats.queued >= 3000
        await asyncio.sleep(0.5)  # the writer meets the stopped server
        await engine.start()
        await recorder.flush()
        stats = recorder.stats
    assert await stored_ids("restart") == ids  # every record, exactly once, in order
    assert stats.written == 5000 and stats.failed == 0 and stats.spilled == 0


async def test_spill_file_written_while_unreachable_then_replayed(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "records.jsonl"
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    payload = {"$schema": "s", "a.b": 1, "big": 2**40, "x": 1.0, "when": when, "none": None}
    # Records already stored that also sit in the file: replaying them is harmless.
    async with Recorder() as first:
        early = [first.record(bot, {"n": n}, session_key="spill") for n in range(10)]
    coll = LLMClientRequest.get_pymongo_collection()
    early_docs = await coll.find({"_id": {"$in": early}}).sort("_id", 1).to_list()

    recorder = Recorder(max_batch=100, retry_deadline=0.3, stop_timeout=0.3, spill_path=spill)
    await recorder.start()
    await engine.stop()
    late = [recorder.record(bot, payload, session_key="spill") for _ in range(250)]
    with pytest.raises(RecordsNotWritten) as info:
        await recorder.flush()
    assert info.value.count == 250
    await recorder.stop()
    assert recorder.stats.spilled == 250 and recorder.stats.written == 0
    append_records(spill, early_docs)

    lines = spill.read_text().splitlines()
    assert len(lines) == 260
    line = json.loads(lines[0])
    assert line["_id"] == {"$oid": str(late[0])}
    assert line["llm_client_id"] == {"$oid": str(bot.id)}
    assert line["llm_client"] == {"$ref": "llm_clients", "$id": {"$oid": str(bot.id)}}
    assert "$date" in line["created_at"]
    assert line["request"]["%24schema"] == "s" and line["request"]["a%2Eb"] == 1

    await engine.start()
    written: list[ObjectId] = []
    async with Recorder(spill_path=spill, after_write=written.extend) as replayer:
        await wait_until(lambda: not spill.exists())
        stats = replayer.stats
    assert stats.replayed == 260 and stats.duplicates == 10 and stats.written == 260
    assert written == late + early
    assert await stored_ids("spill") == early + late
    got = await LLMClientRequest.objects.get(pk=late[0])
    assert got.request == {**payload, "when": when.isoformat()}
    raw = await coll.find_one({"_id": late[0]})
    assert raw is not None and isinstance(raw["request"]["big"], int)
    assert isinstance(raw["request"]["x"], float)


async def test_stop_without_spill_path_reports_what_was_not_written(
    engine: EmbeddedMongo, bot: LLMClient
) -> None:
    recorder = Recorder(retry_deadline=0.2, stop_timeout=0.5)
    await recorder.start()
    await engine.stop()
    for n in range(50):
        recorder.record(bot, {"n": n}, session_key="lost")
    with pytest.raises(RecordsNotWritten, match="50 record") as info:
        await recorder.stop()
    assert info.value.count == 50
    assert recorder.stats.written == 0 and recorder.stats.queued == 0
    assert recorder.stats.last_error is not None


async def test_stop_says_the_spill_file_could_not_take_the_records(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path, immutable: Callable[[Path], None]
) -> None:
    folder = tmp_path / "spill"
    folder.mkdir()
    recorder = Recorder(retry_deadline=60, stop_timeout=0.5, spill_path=folder / "spill.jsonl")
    await recorder.start()
    await engine.stop()
    for n in range(20):
        recorder.record(bot, {"n": n}, session_key="kept-nowhere")
    for path in [folder, *folder.iterdir()]:
        immutable(path)  # neither the spill file nor a new one can be written
    with pytest.raises(RecordsNotWritten, match="20 record") as info:
        await recorder.stop()
    message = str(info.value)
    assert "the spill file could not take them" in message
    assert "Make the spill file writable" in message and "Set spill_path" not in message
    assert recorder.stats.unwritten == 20


def test_spill_reader_keeps_unreadable_lines(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    doc: dict[str, Any] = {"_id": ObjectId(), "created_at": dt.datetime.now(UTC), "request": {}}
    append_records(spill, [doc, doc])
    with spill.open("ab") as file:
        file.write(b'not json\n{"_id": {"$oid": "6b0a0a54ace6e445a646')  # a torn last line
    reader = SpillReader(spill)
    records = reader.read(10)
    assert len(records) == 2 and records[0]["_id"] == doc["_id"]
    assert records[0]["created_at"] == doc["created_at"].replace(
        microsecond=doc["created_at"].microsecond // 1000 * 1000
    )
    assert reader.read(10) == []
    assert reader.corrupt == 2
    kept = corrupt_path(spill).read_bytes().splitlines()
    assert kept == [b"not json", b'{"_id": {"$oid": "6b0a0a54ace6e445a646']
