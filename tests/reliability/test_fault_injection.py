"""Faults injected with ``failCommand`` fail points, against writes and reads.

Every write carries a marker (its scenario and attempt number) in its payload;
after the scenario the markers found in the collection are counted. The
target: every acknowledged write stored exactly once, every unacknowledged one
reported with a ``StorageError`` (an ``LLMReqError``), and nothing stored twice.

Network-class failures use code 6 (HostUnreachable): docs/embedded-engine.md, §9 explains
why a "not primary" code would stall for a heartbeat first. The engine's
``writeConcernError`` fail points carry no ``RetryableWriteError`` label unless
told (gap 7), so the scenario that mimics mongod's labelled write-concern
failure adds the label itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from _reliability import Tally, fail_point, tally_writes
from bson import DBRef
from pymongo import AsyncMongoClient

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, StorageError, init
from llmreq_mongo.embedded import EmbeddedMongo

Control = AsyncMongoClient[dict[str, Any]]
OpenDb = Callable[[str], Awaitable[Handle]]

# (scenario, fail point data, times armed per write, URI options, attempts, expected outcome)
WRITE_SCENARIOS: list[tuple[str, dict[str, Any], int, str, int, str]] = [
    (
        "connection closed once",
        {"closeConnection": True},
        1,
        "",
        5,
        "retried",
    ),
    (
        "HostUnreachable (6) once",
        {"errorCode": 6},
        1,
        "",
        20,
        "retried",
    ),
    (
        "write applied, reply lost (labelled WCE)",
        {
            "writeConcernError": {"code": 6, "errmsg": "injected"},
            "errorLabels": ["RetryableWriteError"],
        },
        1,
        "",
        20,
        "retried",
    ),
    (
        "blocked 1200 ms > socketTimeoutMS 500",
        {"blockConnection": True, "blockTimeMS": 1200},
        1,
        "socketTimeoutMS=500",
        3,
        "retried",
    ),
    (
        "connection closed twice",
        {"closeConnection": True},
        2,
        "",
        3,
        "refused",
    ),
    (
        "HostUnreachable (6) twice",
        {"errorCode": 6},
        2,
        "",
        20,
        "refused",
    ),
    (
        "non-retryable code 2 (BadValue)",
        {"errorCode": 2},
        1,
        "",
        20,
        "refused",
    ),
    (
        "write concern error (no label)",
        {"writeConcernError": {"code": 100, "errmsg": "injected"}},
        1,
        "",
        20,
        "refused-but-applied",
    ),
    (
        "blocked 1200 ms > timeoutMS 500",
        {"blockConnection": True, "blockTimeMS": 1200},
        1,
        "timeoutMS=500",
        3,
        "refused-maybe-applied",
    ),
]


@pytest.fixture
async def open_db(fault_engine: EmbeddedMongo, control: Control) -> AsyncIterator[OpenDb]:
    """Open fresh databases on the fault engine with extra URI options."""
    handles: list[Handle] = []

    async def opener(options: str) -> Handle:
        name = f"llmreq_rel_{uuid.uuid4().hex[:12]}"
        handle = await init(
            f"{fault_engine.uri}?{options}" if options else fault_engine.uri, database=name
        )
        handles.append(handle)
        return handle

    try:
        yield opener
    finally:
        for handle in handles:
            # Dropped through the control client: the handle may have a short timeoutMS.
            await control.drop_database(handle.database.name)
            await handle.close()


async def markers(control: Control, handle: Handle, session_key: str) -> list[int]:
    """The attempt numbers of the records stored for ``session_key``, one per record."""
    coll = control[handle.database.name]["llm_client_requests"]
    cursor = coll.find({"session_key": {"$eq": session_key}}, projection={"request.attempt": 1})
    return [doc["request"]["attempt"] async for doc in cursor]


@pytest.mark.parametrize(
    ("scenario", "data", "times", "options", "attempts", "expected"),
    WRITE_SCENARIOS,
    ids=[s[0] for s in WRITE_SCENARIOS],
)
async def test_create_under_fault(
    control: Control,
    open_db: OpenDb,
    scenario: str,
    data: dict[str, Any],
    times: int,
    options: str,
    attempts: int,
    expected: str,
) -> None:
    handle = await open_db(options)
    client = await LLMClient.objects.create(name="faulty")
    key = f"fault-{uuid.uuid4().hex[:8]}"
    tally = Tally("create", scenario, f"failCommand insert x{times}: {data}", attempted=attempts)
    acknowledged: list[int] = []
    for attempt in range(attempts):
        async with fail_point(control, {"times": times}, {"failCommands": ["insert"], **data}):
            try:
                req = await LLMClientRequest.objects.create(
                    llm_client=client,
                    request={"scenario": scenario, "attempt": attempt},
                    session_key=key,
                )
            except Exception as exc:
                tally.error(exc)
            else:
                assert req.id is not None
                acknowledged.append(attempt)
    tally.acknowledged = len(acknowledged)
    if "blockTimeMS" in data:
        # Let the blocked first attempts reach the server before counting.
        await asyncio.sleep(data["blockTimeMS"] / 1000 + 0.3)
    tally_writes(tally, acknowledged, await markers(control, handle, key))
    tally.result = "ok" if tally.lost == 0 and tally.duplicated == 0 else "FAILED"
    tally.file()

    assert tally.only_storage_errors(), tally.errors
    assert tally.lost == 0
    assert tally.duplicated == 0
    if expected == "retried":
        assert tally.acknowledged == attempts, tally.errors
        assert tally.stored == attempts
    elif expected == "refused":
        assert tally.acknowledged == 0
        assert tally.stored == 0
    elif expected == "refused-but-applied":
        assert tally.acknowledged == 0
        assert tally.unacknowledged_stored == attempts
    else:  # the server applies a write after the client gave up on it, or not
        assert tally.acknowledged == 0
    # The handle still works once the fault is gone.
    await LLMClientRequest.objects.create(
        llm_client=client, request={"after": True}, session_key=key
    )


async def test_concurrent_creates_with_connections_dropping(
    control: Control, fault_db: Handle
) -> None:
    """100 writes from 10 tasks while the next 15 inserts have their connection closed."""
    client = await LLMClient.objects.create(name="chaos")
    key = "chaos"
    tally = Tally("create", "10 tasks x 10, 15 connections dropped", "closeConnection x15")
    acknowledged: list[int] = []

    async def writer(task: int) -> None:
        for n in range(10):
            attempt = task * 100 + n
            try:
                await LLMClientRequest.objects.create(
                    llm_client=client, request={"attempt": attempt}, session_key=key
                )
            except Exception as exc:
                tally.error(exc)
            else:
                acknowledged.append(attempt)

    async with fail_point(
        control, {"times": 15}, {"failCommands": ["insert"], "closeConnection": True}
    ):
        await asyncio.gather(*(writer(t) for t in range(10)))
    tally.attempted = 100
    tally.acknowledged = len(acknowledged)
    tally_writes(tally, acknowledged, await markers(control, fault_db, key))
    tally.result = "ok" if tally.lost == 0 and tally.duplicated == 0 else "FAILED"
    tally.file()
    assert tally.lost == 0
    assert tally.duplicated == 0
    assert tally.only_storage_errors(), tally.errors
    assert tally.acknowledged + sum(tally.errors.values()) == 100
    # A dropped connection makes the driver clear its pool, so writes in
    # flight on other connections can fail too; some always get through.
    assert tally.acknowledged > 0


READS: dict[str, tuple[str, Callable[[str, Any], Awaitable[Any]]]] = {
    "to_list": ("find", lambda key, _: LLMClientRequest.objects.filter(session_key=key).to_list()),
    "count": ("aggregate", lambda key, _: LLMClientRequest.objects.filter(session_key=key).count()),
    "exists": ("find", lambda key, _: LLMClientRequest.objects.filter(session_key=key).exists()),
    "first": ("find", lambda key, _: LLMClientRequest.objects.filter(session_key=key).first()),
    "get": ("find", lambda _, pk: LLMClientRequest.objects.get(pk=pk)),
}


def _answer(name: str, result: Any) -> Any:
    if name == "to_list":
        return sorted(str(r.id) for r in result)
    if name in ("first", "get"):
        return str(result.id)
    return result


# (scenario, fail point data, times, URI options, outcome)
READ_SCENARIOS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("connection closed once", {"closeConnection": True}, 1, "", "retried"),
    ("HostUnreachable (6) once", {"errorCode": 6}, 1, "", "retried"),
    ("HostUnreachable (6) twice", {"errorCode": 6}, 2, "", "refused"),
    ("non-retryable code 2", {"errorCode": 2}, 1, "", "refused"),
    (
        "blocked 1200 ms > timeoutMS 500",
        {"blockConnection": True, "blockTimeMS": 1200},
        1,
        "timeoutMS=500",
        "refused",
    ),
]


@pytest.mark.parametrize(
    ("scenario", "data", "times", "options", "expected"),
    READ_SCENARIOS,
    ids=[s[0] for s in READ_SCENARIOS],
)
async def test_queries_under_fault(
    control: Control,
    open_db: OpenDb,
    scenario: str,
    data: dict[str, Any],
    times: int,
    options: str,
    expected: str,
) -> None:
    await open_db(options)
    client = await LLMClient.objects.create(name="reader")
    key = "read-me"
    stored = [
        await LLMClientRequest.objects.create(llm_client=client, request={"n": n}, session_key=key)
        for n in range(5)
    ]
    truth = {
        "to_list": sorted(str(r.id) for r in stored),
        "count": 5,
        "exists": True,
        "first": str(min(r.id for r in stored if r.id is not None)),
        "get": str(stored[2].id),
    }
    tally = Tally("reads", scenario, f"failCommand find/aggregate x{times}: {data}")
    wrong = 0
    for name, (command, read) in READS.items():
        tally.attempted += 1
        async with fail_point(control, {"times": times}, {"failCommands": [command], **data}):
            try:
                result = await read(key, stored[2].id)
            except Exception as exc:
                tally.error(exc)
                continue
        tally.acknowledged += 1
        if _answer(name, result) != truth[name]:
            wrong += 1
    assert tally.only_storage_errors(), tally.errors
    tally.notes = f"wrong answers: {wrong}"
    tally.result = "ok" if wrong == 0 else "FAILED"
    tally.file()
    assert wrong == 0
    if expected == "retried":
        assert tally.acknowledged == tally.attempted, tally.errors
    else:
        assert tally.acknowledged == 0, f"{name} answered despite the fault"


async def test_iteration_fails_loudly_when_get_more_fails(
    control: Control, fault_db: Handle
) -> None:
    """A cursor that breaks half-way raises StorageError instead of ending early."""
    client = await LLMClient.objects.create(name="streamer")
    await fault_db.database["llm_client_requests"].insert_many(
        [
            {
                "llm_client": DBRef("llm_clients", client.id),
                "llm_client_id": client.id,
                "request": {"n": n},
                "session_key": "long",
                "is_aggregation": False,
                "created_at": client.created_at,
                "updated_at": client.created_at,
            }
            for n in range(250)
        ]
    )
    seen = 0

    async def drain() -> None:
        nonlocal seen
        async for _ in LLMClientRequest.objects.filter(session_key="long"):
            seen += 1

    async with fail_point(control, {"times": 1}, {"failCommands": ["getMore"], "errorCode": 6}):
        with pytest.raises(StorageError) as info:
            await drain()
    assert 0 < seen < 250
    assert info.value.__cause__ is not None
    Tally(
        "reads",
        "getMore fails mid-iteration",
        "failCommand getMore x1 code 6",
        attempted=1,
        errors={"StorageError": 1},
        result="ok",
        notes=f"raised after {seen} of 250 documents",
    ).file()


async def test_update_is_not_retried_and_says_so(control: Control, fault_db: Handle) -> None:
    """``QuerySet.update`` is a multi-document write: the driver never retries it."""
    client = await LLMClient.objects.create(name="updater")
    for n in range(3):
        await LLMClientRequest.objects.create(
            llm_client=client, request={"n": n}, session_key="old"
        )
    # Not the session key: an update of a shard key field goes record by record
    # (docs/scaling.md), each a retryable write.
    async with fail_point(control, {"times": 1}, {"failCommands": ["update"], "errorCode": 6}):
        with pytest.raises(StorageError):
            await LLMClientRequest.objects.filter(session_key="old").update(is_aggregation=True)
    assert await LLMClientRequest.objects.filter(is_aggregation=True).count() == 0
    assert await LLMClientRequest.objects.filter(session_key="old").update(is_aggregation=True) == 3
    Tally(
        "update",
        "update_many, code 6 once",
        "failCommand update x1 code 6",
        attempted=1,
        errors={"StorageError": 1},
        result="ok",
        notes="not applied; a second call applies it",
    ).file()
