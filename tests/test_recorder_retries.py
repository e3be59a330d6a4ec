"""The recorder through injected failures (``configureFailPoint`` with ``failCommand``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, Recorder, init
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.pytest_plugin import TestServer

_REFUSED = (
    "the server refuses configureFailPoint ({}); run mongod with "
    "--setParameter enableTestCommands=1 to test retries"
)


async def _takes_fail_points(uri: str) -> OperationFailure | None:
    probe: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await probe.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    except OperationFailure as exc:
        return exc
    finally:
        await probe.close()
    return None


@pytest.fixture(scope="module")
async def fail_point_uri(llmreq_engine: TestServer) -> AsyncIterator[str]:
    """A server that takes fail points: the session's, or an embedded engine of our own.

    The session's embedded engine may run as a child process started without
    test commands; the in-process engine has them on.
    """
    refused = await _takes_fail_points(llmreq_engine.uri)
    if refused is None:
        yield llmreq_engine.uri
    elif not llmreq_engine.embedded:
        pytest.skip(_REFUSED.format(refused))
    else:
        async with EmbeddedMongo() as engine:
            yield engine.uri


@pytest.fixture
async def handle(fail_point_uri: str) -> AsyncIterator[Handle]:
    name = f"llmreq_test_{uuid.uuid4().hex[:12]}"
    handle = await init(fail_point_uri, database=name)
    try:
        yield handle
    finally:
        await handle.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await handle.client.drop_database(name)
        await handle.close()


@pytest.fixture
async def bot(handle: Handle) -> LLMClient:
    return await LLMClient.objects.create(name="retry-bot")


@contextlib.asynccontextmanager
async def fail_point(handle: Handle, times: int, **data: Any) -> AsyncIterator[None]:
    """Make the next ``times`` inserts fail as ``data`` says; always switched off after."""
    admin = handle.client.admin
    try:
        await admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": {"times": times},
                "data": {"failCommands": ["insert"], **data},
            }
        )
    except OperationFailure as exc:
        pytest.skip(_REFUSED.format(exc))
    try:
        yield
    finally:
        await admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def stored_ids(session_key: str) -> list[Any]:
    coll = LLMClientRequest.get_pymongo_collection()
    cursor = coll.find({"session_key": {"$eq": session_key}}, projection={"_id": 1}).sort("_id", 1)
    return [doc["_id"] async for doc in cursor]


async def test_retries_injected_network_errors(bot: LLMClient, handle: Handle) -> None:
    # Code 6 (HostUnreachable) is retried at once; not-primary codes wait for a
    # heartbeat on the embedded engine (docs/embedded-engine.md, §9).
    async with Recorder(max_batch=50) as recorder:
        async with fail_point(handle, 3, errorCode=6):
            ids = [recorder.record(bot, {"n": n}, session_key="net") for n in range(120)]
            await recorder.flush()
        stats = recorder.stats
    assert stats.retried >= 1 and stats.failed == 0 and stats.written == 120
    assert isinstance(stats.last_error, Exception)
    assert await stored_ids("net") == ids


async def test_retries_closed_connections(bot: LLMClient, handle: Handle) -> None:
    async with Recorder(max_batch=50) as recorder:
        async with fail_point(handle, 4, closeConnection=True):
            ids = [recorder.record(bot, {"n": n}, session_key="close") for n in range(120)]
            await recorder.flush()
        assert recorder.stats.retried >= 1
    assert await stored_ids("close") == ids


async def test_unconfirmed_writes_are_sent_again_and_duplicates_count(
    bot: LLMClient, handle: Handle
) -> None:
    # The insert is applied, then a write-concern error comes back: the
    # recorder sends the batch again and finds every record already stored.
    # Code 64 carries no RetryableWriteError label on any server, so the
    # driver leaves the retry to the recorder.
    async with Recorder(max_batch=50) as recorder:
        async with fail_point(
            handle, 1, writeConcernError={"code": 64, "errmsg": "waiting for replication"}
        ):
            ids = [recorder.record(bot, {"n": n}, session_key="wce") for n in range(20)]
            await recorder.flush()
        stats = recorder.stats
    assert stats.retried == 1 and stats.duplicates == 20 and stats.written == 20
    assert await stored_ids("wce") == ids
