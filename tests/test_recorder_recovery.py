"""The recorder when MongoDB goes away and comes back: replay, flush, stop, the block's error.

Like ``test_recorder_outage``, these tests stop and restart a server of their
own (an embedded engine in a child process, back on the same port with its
data).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, Recorder, init
from llmreq_mongo._recording.spill import append_records, corrupt_path
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import RecordsNotWritten
from recorder_helpers import stored_ids, wait_until


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedMongo]:
    async with EmbeddedMongo(tmp_path_factory.mktemp("recovery"), process=True) as engine:
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
    return await LLMClient.objects.create(name="recovery-bot")


def spilling(spill: Path, **options: float) -> Recorder:
    return Recorder(
        spill_path=spill,
        max_batch=100,
        retry_deadline=options.get("retry_deadline", 0.3),
        stop_timeout=options.get("stop_timeout", 5.0),
    )


async def test_an_idle_recorder_replays_as_soon_as_mongodb_answers(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "idle.spill"
    async with spilling(spill) as recorder:
        await engine.stop()
        ids = [recorder.record(bot, {"n": n}, session_key="idle") for n in range(10)]
        await wait_until(lambda: recorder.stats.spilled == 10)
        await engine.start()
        # Nothing new is recorded: the spill file is replayed all the same.
        await wait_until(lambda: recorder.stats.replayed == 10 and not spill.exists())
        await recorder.flush()  # every record is acknowledged now
    assert await stored_ids("idle") == ids


async def test_stop_replays_before_it_gives_up(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "stop.spill"
    recorder = spilling(spill)
    await recorder.start()
    await engine.stop()
    ids = [recorder.record(bot, {"n": n}, session_key="stop") for n in range(10)]
    await wait_until(lambda: recorder.stats.spilled == 10)
    await engine.start()
    await recorder.stop()
    assert recorder.stats.replayed == 10
    assert not spill.exists()
    assert await stored_ids("stop") == ids


async def test_flush_reports_records_spilled_before_it_was_called(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "flush.spill"
    async with spilling(spill) as recorder:
        await engine.stop()
        for n in range(10):
            recorder.record(bot, {"n": n}, session_key="flush")
        await wait_until(lambda: recorder.stats.spilled == 10)
        with pytest.raises(RecordsNotWritten) as info:
            await recorder.flush()
        assert info.value.count == 10
        with pytest.raises(RecordsNotWritten):  # still not acknowledged
            await recorder.flush()
        await engine.start()
        await wait_until(lambda: recorder.stats.replayed == 10)
        await recorder.flush()  # replayed: acknowledged now
        assert recorder.stats.written == 10


async def test_a_torn_line_goes_to_corrupt_once_across_replays(
    engine: EmbeddedMongo, bot: LLMClient, handle: Handle, tmp_path: Path
) -> None:
    spill = tmp_path / "torn.spill"
    async with Recorder() as first:
        ids = [first.record(bot, {"n": n}, session_key="torn") for n in range(3)]
    coll = LLMClientRequest.get_pymongo_collection()
    docs = await coll.find({"session_key": "torn"}).sort("_id", 1).to_list()
    await coll.delete_many({"session_key": "torn"})
    append_records(spill, docs)
    torn = b'{"_id": {"$oid": "6b0a0a54ace'
    with spill.open("ab") as file:
        file.write(torn)
    await engine.stop()
    async with spilling(spill, stop_timeout=0.3):  # replay fails: MongoDB is down
        await asyncio.sleep(0.5)
    await engine.start()
    async with Recorder(spill_path=spill) as replayer:
        await wait_until(lambda: not spill.exists())
        assert replayer.stats.replayed == 3
    assert corrupt_path(spill).read_bytes() == torn + b"\n"
    assert await stored_ids("torn") == ids


async def test_the_block_s_exception_is_never_replaced(
    engine: EmbeddedMongo, bot: LLMClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def interrupted(recorder: Recorder, count: int, error: BaseException) -> None:
        async with recorder:
            await engine.stop()
            for n in range(count):
                recorder.record(bot, {"n": n}, session_key="interrupted")
            raise error

    recorder = Recorder(retry_deadline=0.2, stop_timeout=0.3)
    with pytest.raises(KeyboardInterrupt):
        await interrupted(recorder, 20, KeyboardInterrupt())
    assert recorder.stats.unwritten == 20
    assert "20 record(s) were not written" in caplog.text

    other = Recorder(retry_deadline=0.2, stop_timeout=0.3)
    with pytest.raises(ValueError, match="the application's own error"):
        await interrupted(other, 1, ValueError("the application's own error"))
    assert other.stats.unwritten == 1


async def test_a_cancelled_block_spills_what_it_can(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path
) -> None:
    spill = tmp_path / "cancelled.spill"
    started = asyncio.Event()

    async def app() -> None:
        async with spilling(spill, retry_deadline=60, stop_timeout=60) as recorder:
            await engine.stop()
            for n in range(30):
                recorder.record(bot, {"n": n}, session_key="cancelled")
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(app())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(spill.read_bytes().splitlines()) == 30


@pytest.mark.skipif(
    not Path("/dev/full").is_char_device(),
    reason="needs /dev/full, a device whose every write fails with ENOSPC",
)
async def test_a_full_disk_is_not_blamed_on_a_missing_spill_path(
    engine: EmbeddedMongo, bot: LLMClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spill = tmp_path / "full.spill"
    spill.symlink_to("/dev/full")
    caplog.set_level(logging.ERROR, logger="llmreq_mongo.recorder")
    recorder = Recorder(spill_path=spill, retry_deadline=0.2, stop_timeout=0.3)
    await recorder.start()
    await engine.stop()
    recorder.record(bot, {"n": 1}, session_key="full")
    await wait_until(lambda: "wait in memory" in caplog.text)
    with pytest.raises(RecordsNotWritten):
        await recorder.stop()
    assert "No space left" in caplog.text
    assert "set spill_path" not in caplog.text
    assert "spill file could not take them" in caplog.text
