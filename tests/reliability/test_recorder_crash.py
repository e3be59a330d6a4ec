"""``spill="always"`` against a real crash: a child process killed with SIGKILL.

The child records while every insert fails (a ``failCommand`` fail point),
so nothing can reach MongoDB; it reports the ids ``record()`` returned once
``arecord()`` has returned (under ``spill="always"`` that means on disk), and
is killed. A new recorder on the same spill file must then store every one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _reliability import fail_point
from bson import ObjectId
from pymongo import AsyncMongoClient

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, Recorder
from llmreq_mongo.embedded import EmbeddedMongo

RECORDS = 5000

CHILD = """
import asyncio, json, sys
import llmreq_mongo
from llmreq_mongo import LLMClient, Recorder

async def main(uri, database, client_id, spill):
    await llmreq_mongo.init(uri, database=database)
    client = await LLMClient.objects.get(pk=client_id)
    recorder = Recorder(spill=sys.argv[5], spill_path=spill, retry_deadline=600)
    await recorder.start()
    ids = [recorder.record(client, {"n": n}, session_key="crash") for n in range(RECORDS)]
    ids.append(await recorder.arecord(client, {"n": RECORDS}, session_key="crash"))
    print(json.dumps([str(i) for i in ids]), flush=True)
    await asyncio.sleep(3600)  # killed here

asyncio.run(main(*sys.argv[1:5]))
"""


async def crash_child(
    fault_engine: EmbeddedMongo, db: Handle, client: LLMClient, spill: Path, mode: str
) -> list[ObjectId]:
    """Run the child until it reports its ids, then SIGKILL it."""
    script = textwrap.dedent(CHILD).replace("RECORDS", str(RECORDS))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        fault_engine.uri,
        db.database.name,
        str(client.id),
        str(spill),
        mode,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 22,  # one line holds every id
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 120)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    return [ObjectId(i) for i in json.loads(line)]


async def test_spill_always_loses_nothing_on_sigkill(
    fault_engine: EmbeddedMongo,
    control: AsyncMongoClient[dict[str, Any]],
    fault_db: Handle,
    tmp_path: Path,
) -> None:
    client = await LLMClient.objects.create(name="crashing")
    spill = tmp_path / "wal.spill"
    async with fail_point(control, "alwaysOn", {"failCommands": ["insert"], "errorCode": 6}):
        ids = await crash_child(fault_engine, fault_db, client, spill, "always")
    assert len(ids) == RECORDS + 1
    async with Recorder(spill_path=spill) as replayer:
        for _ in range(6000):
            if not spill.exists():
                break
            await asyncio.sleep(0.01)
        stats = replayer.stats
    assert not spill.exists()
    coll = LLMClientRequest.get_pymongo_collection()
    found = [doc["_id"] async for doc in coll.find({"session_key": "crash"}, {"_id": 1})]
    assert sorted(found) == sorted(ids)  # every one, once
    assert stats.replayed == RECORDS + 1


async def test_spill_on_failure_keeps_nothing_on_disk_before_the_deadline(
    fault_engine: EmbeddedMongo,
    control: AsyncMongoClient[dict[str, Any]],
    fault_db: Handle,
    tmp_path: Path,
) -> None:
    """The window the README documents: the default mode holds them in memory only."""
    client = await LLMClient.objects.create(name="crashing")
    spill = tmp_path / "on-failure.spill"
    async with fail_point(control, "alwaysOn", {"failCommands": ["insert"], "errorCode": 6}):
        ids = await crash_child(fault_engine, fault_db, client, spill, "on_failure")
    assert len(ids) == RECORDS + 1
    assert not spill.exists() or spill.stat().st_size == 0


@pytest.mark.parametrize("records", [1, 1200])
async def test_spill_always_empties_its_file_once_acknowledged(
    fault_db: Handle, tmp_path: Path, records: int
) -> None:
    client = await LLMClient.objects.create(name="journaled")
    spill = tmp_path / "wal.spill"
    async with Recorder(spill="always", spill_path=spill, max_batch=100) as recorder:
        ids = [recorder.record(client, {"n": n}, session_key="wal") for n in range(records)]
        await recorder.flush()
        assert spill.read_bytes() == b""  # every journaled record is acknowledged
        stats = recorder.stats
    assert stats.written == records and stats.spilled == 0
    coll = LLMClientRequest.get_pymongo_collection()
    found = [doc["_id"] async for doc in coll.find({"session_key": "wal"}, {"_id": 1})]
    assert sorted(found) == sorted(ids)
