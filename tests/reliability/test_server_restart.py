"""The server stopped and started again while writers and readers keep going.

The engine runs as a separate process (``secantusd-py``) so that it can be
stopped gracefully (SIGINT or SIGTERM) and started again on the same port with
the same storage; the library's client is never re-created, it recovers by
itself. A graceful stop keeps every acknowledged write (docs/embedded-engine.md, §6 is
about ``kill -9``, which this suite does not do).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
from _reliability import EngineProcess, Tally, tally_writes
from bson import ObjectId

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, Recorder, init

WRITERS = 8


@pytest.fixture(scope="module")
async def engine_process(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EngineProcess]:
    """One ``secantusd-py`` process for the module, on a port of its own."""
    engine = EngineProcess(tmp_path_factory.mktemp("restart-store"))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


@pytest.fixture
async def restart_db(engine_process: EngineProcess) -> AsyncIterator[Handle]:
    """A fresh database on that engine; server selection gives up after 1.5 s."""
    name = f"llmreq_restart_{uuid.uuid4().hex[:12]}"
    handle = await init(f"{engine_process.uri}?serverSelectionTimeoutMS=1500", database=name)
    try:
        yield handle
    finally:
        await handle.client.drop_database(name)
        await handle.close()


async def _run_through_restart(
    engine: EngineProcess, handle: Handle, tally: Tally, *, sig: int, outage: float
) -> None:
    client = await LLMClient.objects.create(name=f"restart-{uuid.uuid4().hex[:6]}")
    acknowledged: list[tuple[int, int]] = []
    reads = {"ok": 0, "wrong": 0}
    after_restart = asyncio.Event()
    acked_after_restart = 0
    stop = asyncio.Event()

    async def writer(task: int) -> None:
        nonlocal acked_after_restart
        n = 0
        while not stop.is_set():
            n += 1
            tally.attempted += 1
            try:
                await LLMClientRequest.objects.create(
                    llm_client=client, request={"task": task, "n": n}, session_key=f"w{task}"
                )
            except Exception as exc:
                tally.error(exc)
                await asyncio.sleep(0.05)
            else:
                acknowledged.append((task, n))
                if after_restart.is_set():
                    acked_after_restart += 1

    async def reader() -> None:
        while not stop.is_set():
            mine = sum(1 for task, _ in acknowledged if task == 0)
            try:
                seen = await LLMClientRequest.objects.filter(session_key="w0").count()
            except Exception as exc:
                tally.error(exc)
                await asyncio.sleep(0.05)
                continue
            # Every write acknowledged before the count started must be counted.
            reads["ok" if seen >= mine else "wrong"] += 1

    tasks = [asyncio.create_task(writer(t)) for t in range(WRITERS)]
    tasks.append(asyncio.create_task(reader()))
    try:
        await asyncio.sleep(1.0)
        assert await engine.stop(sig=sig) == 0
        await asyncio.sleep(outage)
        await engine.start()
        after_restart.set()
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    tally.acknowledged = len(acknowledged)
    coll = handle.database["llm_client_requests"]
    found = [
        (doc["request"]["task"], doc["request"]["n"])
        async for doc in coll.find({"llm_client_id": client.id}, projection={"request": 1})
    ]
    tally_writes(tally, acknowledged, found)
    tally.notes = (
        f"stop {engine.stops[-1]:.2f} s, start {engine.starts[-1]:.2f} s, "
        f"{acked_after_restart} acked after restart, reads ok {reads['ok']} wrong {reads['wrong']}"
    )
    tally.result = "ok" if tally.lost == 0 and tally.duplicated == 0 else "FAILED"
    tally.file()
    assert tally.only_storage_errors(), tally.errors
    assert tally.lost == 0
    assert tally.duplicated == 0
    assert reads["wrong"] == 0
    assert acked_after_restart > 0, "the client did not recover after the restart"


async def test_short_restart_within_server_selection(
    engine_process: EngineProcess, restart_db: Handle
) -> None:
    """SIGINT, then straight back up: the driver's retry waits for the server."""
    tally = Tally("restart", "SIGINT + restart at once", "graceful stop, same port")
    await _run_through_restart(engine_process, restart_db, tally, sig=signal.SIGINT, outage=0.0)


async def test_outage_longer_than_server_selection(
    engine_process: EngineProcess, restart_db: Handle
) -> None:
    """SIGTERM, 2.5 s down: writes fail with StorageError meanwhile, then resume."""
    tally = Tally("restart", "SIGTERM, down 2.5 s (> 1.5 s SST)", "graceful stop, same port")
    await _run_through_restart(engine_process, restart_db, tally, sig=signal.SIGTERM, outage=2.5)
    assert sum(tally.errors.values()) > 0, "the outage should have refused some writes"
    assert tally.acknowledged > 0


async def test_recorder_through_a_restart(
    engine_process: EngineProcess, restart_db: Handle
) -> None:
    """Thousands of records queued while the server is down: each stored exactly once."""
    client = await LLMClient.objects.create(name="recorded-through-restart")
    recorded: list[ObjectId] = []
    stop = asyncio.Event()

    async def producer(task: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            recorded.append(
                await recorder.arecord(client, {"task": task, "n": n}, session_key="rec-restart")
            )
            await asyncio.sleep(0.01)  # about 100 records/s per task

    async with Recorder(max_batch=200, flush_interval=0.02, retry_deadline=30.0) as recorder:
        tasks = [asyncio.create_task(producer(t)) for t in range(WRITERS)]
        try:
            await asyncio.sleep(1.0)
            assert await engine_process.stop(sig=signal.SIGINT) == 0
            await asyncio.sleep(1.0)
            queued_while_down = recorder.stats.queued
            await engine_process.start()
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        await recorder.flush()
        stats = recorder.stats

    coll = restart_db.database["llm_client_requests"]
    found = [
        doc["_id"] async for doc in coll.find({"session_key": "rec-restart"}, projection={"_id": 1})
    ]
    tally = Tally(
        "restart",
        "recorder: SIGINT, down 1 s, restart",
        "graceful stop, same port",
        attempted=len(recorded),
        acknowledged=stats.written,
        stored=len(set(found)),
        duplicated=len(found) - len(set(found)),
        lost=len(set(recorded) - set(found)),
        notes=(
            f"{queued_while_down} queued while down; retried {stats.retried}, "
            f"duplicates absorbed {stats.duplicates}, failed {stats.failed}"
        ),
    )
    tally.result = "ok" if tally.lost == 0 and tally.duplicated == 0 else "FAILED"
    tally.file()
    assert tally.lost == 0
    assert tally.duplicated == 0
    assert stats.failed == 0
    assert stats.written == len(recorded)
    assert queued_while_down > 0
