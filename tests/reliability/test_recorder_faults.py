"""The background recorder under injected faults: every record stored once, or reported.

``record()`` returns an id at once; a record counts as acknowledged once
``flush()`` has returned and the recorder says it was written. Afterwards the
ids found in the collection are compared with the ids ``record()`` returned:
none may be missing unless the recorder reported it (``stats.failed``,
``stats.spilled``, ``on_error``), and none may be stored twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _reliability import Tally, fail_point
from bson import ObjectId
from pymongo import AsyncMongoClient

from llmreq_mongo import Handle, LLMClient, Recorder, init
from llmreq_mongo.embedded import EmbeddedMongo

Control = AsyncMongoClient[dict[str, Any]]
RECORDS = 1500
TASKS = 10

# (scenario, fail point data, times, URI options)
SCENARIOS: list[tuple[str, dict[str, Any], int, str]] = [
    ("connection closed x3", {"closeConnection": True}, 3, ""),
    ("HostUnreachable (6) x6", {"errorCode": 6}, 6, ""),
    (
        # Applied, but reported with a write-concern error the driver does not
        # retry (no label): the recorder sends the batch again itself.
        "batch applied + write concern error x2",
        {"writeConcernError": {"code": 100, "errmsg": "injected"}},
        2,
        "",
    ),
    (
        "batch blocked 1200 ms > timeoutMS 500",
        {"blockConnection": True, "blockTimeMS": 1200},
        1,
        "timeoutMS=500",
    ),
]


@pytest.fixture
async def recorder_db(
    fault_engine: EmbeddedMongo, control: Control, request: pytest.FixtureRequest
) -> AsyncIterator[Handle]:
    options: str = getattr(request, "param", "")
    name = f"llmreq_recfault_{uuid.uuid4().hex[:12]}"
    uri = f"{fault_engine.uri}?{options}" if options else fault_engine.uri
    handle = await init(uri, database=name)
    try:
        yield handle
    finally:
        # Dropped through the control client: the handle may have a short timeoutMS.
        await control.drop_database(name)
        await handle.close()


async def _stored_ids(control: Control, handle: Handle, key: str) -> list[ObjectId]:
    coll = control[handle.database.name]["llm_client_requests"]
    return [doc["_id"] async for doc in coll.find({"session_key": key}, projection={"_id": 1})]


@pytest.mark.parametrize(
    ("scenario", "data", "times", "recorder_db"),
    [(s, d, t, o) for s, d, t, o in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
    indirect=["recorder_db"],
)
async def test_recorder_under_fault(
    control: Control,
    recorder_db: Handle,
    scenario: str,
    data: dict[str, Any],
    times: int,
) -> None:
    client = await LLMClient.objects.create(name="recorded")
    key = f"rec-{uuid.uuid4().hex[:8]}"
    recorded: list[ObjectId] = []
    rejected: list[Any] = []

    async def producer(task: int) -> None:
        for n in range(RECORDS // TASKS):
            recorded.append(await recorder.arecord(client, {"task": task, "n": n}, session_key=key))
            if n % 25 == 0:
                await asyncio.sleep(0)

    async with (
        fail_point(control, {"times": times}, {"failCommands": ["insert"], **data}),
        Recorder(
            max_batch=100,
            flush_interval=0.01,
            retry_deadline=20.0,
            on_error=lambda doc, err: rejected.append(doc["_id"]),
        ) as recorder,
    ):
        await asyncio.gather(*(producer(t) for t in range(TASKS)))
        await recorder.flush()
        stats = recorder.stats
    if "blockTimeMS" in data:
        await asyncio.sleep(data["blockTimeMS"] / 1000 + 0.3)

    found = await _stored_ids(control, recorder_db, key)
    tally = Tally(
        "recorder",
        scenario,
        f"failCommand insert x{times}",
        attempted=len(recorded),
        acknowledged=stats.written,
        stored=len(set(found)),
        duplicated=len(found) - len(set(found)),
        lost=len(set(recorded) - set(found) - set(rejected)),
        unacknowledged_stored=0,
        errors={"failed": stats.failed, "spilled": stats.spilled} if stats.failed else {},
        notes=f"retried {stats.retried}, duplicates absorbed {stats.duplicates}",
    )
    tally.result = "ok" if tally.lost == 0 and tally.duplicated == 0 else "FAILED"
    tally.file()
    assert len(recorded) == RECORDS
    assert tally.duplicated == 0
    assert tally.lost == 0
    assert stats.failed == 0 and rejected == []
    assert stats.written == RECORDS
    assert set(found) == set(recorded)
    assert stats.retried > 0, "the fault never reached the recorder"


async def test_recorder_never_drops_a_batch_the_server_refused(
    control: Control, fault_db: Handle
) -> None:
    """A command-level error (BadValue) on a whole batch: stored later, or reported."""
    client = await LLMClient.objects.create(name="refused")
    key = "rec-permanent"
    rejected: list[ObjectId] = []
    recorded: list[ObjectId] = []
    async with (
        fail_point(control, {"times": 1}, {"failCommands": ["insert"], "errorCode": 2}),
        Recorder(
            max_batch=50,
            flush_interval=0.01,
            retry_deadline=5.0,
            on_error=lambda doc, err: rejected.append(doc["_id"]),
        ) as recorder,
    ):
        recorded = [recorder.record(client, {"n": n}, session_key=key) for n in range(200)]
        await recorder.flush()
        stats = recorder.stats
    found = set(await _stored_ids(control, fault_db, key))
    unaccounted = set(recorded) - found - set(rejected)
    Tally(
        "recorder",
        "BadValue (2) on one batch",
        "failCommand insert x1 code 2",
        attempted=len(recorded),
        acknowledged=stats.written,
        stored=len(found),
        lost=len(unaccounted),
        errors={"failed": stats.failed} if stats.failed else {},
        result="ok" if not unaccounted else "FAILED",
        notes=f"retried {stats.retried}, reported to on_error {len(rejected)}",
    ).file()
    assert unaccounted == set()
    assert stats.written + stats.failed == len(recorded)
    assert len(rejected) == stats.failed
