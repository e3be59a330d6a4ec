"""init(): targets, idempotent indexes, ownership of the client, and refusals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

import llmreq_mongo
from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, StorageError
from llmreq_mongo.errors import UnsupportedClient
from llmreq_mongo.pytest_plugin import TestServer

OUR_INDEXES = {
    "_id_",
    "llmreq_session_time",
    "llmreq_client_time",
    "llmreq_created_at",
    "llmreq_updated_at",
}


@pytest.fixture
async def mongo(llmreq_engine: TestServer) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(llmreq_engine.uri, tz_aware=True)
    names: list[str] = []
    client.test_names = names  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        for name in names:
            await client.drop_database(name)
        await client.close()


def fresh_name(mongo: AsyncMongoClient[dict[str, Any]]) -> str:
    name = f"llmreq_conn_{uuid.uuid4().hex[:10]}"
    mongo.test_names.append(name)  # type: ignore[attr-defined]
    return name


async def index_keys(coll: Any) -> dict[str, list[tuple[str, int]]]:
    return {i["name"]: list(i["key"].items()) async for i in await coll.list_indexes()}


async def test_init_creates_indexes_and_is_idempotent(
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    db = mongo[fresh_name(mongo)]
    await llmreq_mongo.init(db)
    first = await index_keys(db["llm_client_requests"])
    assert set(first) == OUR_INDEXES
    assert first["llmreq_session_time"] == [("session_key", 1), ("created_at", 1), ("_id", 1)]
    assert first["llmreq_client_time"] == [("llm_client_id", 1), ("created_at", 1), ("_id", 1)]
    clients = await db["llm_clients"].index_information()
    assert clients["llmreq_name_unique"]["unique"] is True
    await llmreq_mongo.init(db)
    assert await index_keys(db["llm_client_requests"]) == first


async def test_init_respects_indexes_made_by_others(
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    db = mongo[fresh_name(mongo)]
    coll = db["llm_client_requests"]
    await coll.create_index([("created_at", 1)], name="ops_created")
    await coll.create_index([("request.model", 1)], name="ops_model")
    await llmreq_mongo.init(db)
    names = set((await index_keys(coll)).keys())
    assert "ops_created" in names and "ops_model" in names
    assert "llmreq_created_at" not in names  # same keys already served
    await llmreq_mongo.init(db)
    assert set((await index_keys(coll)).keys()) == names


async def test_given_client_stays_open_own_client_closes(
    mongo: AsyncMongoClient[dict[str, Any]], llmreq_engine: TestServer
) -> None:
    name = fresh_name(mongo)
    handle = await llmreq_mongo.init(mongo, database=name)
    assert handle.database.name == name
    await LLMClient.objects.create(name="a")
    await handle.close()
    assert await mongo[name]["llm_clients"].count_documents({}) == 1  # still usable

    own = await llmreq_mongo.init(llmreq_engine.uri, database=name)
    assert own.client is not mongo
    assert await LLMClient.objects.count() == 1
    await own.close()
    with pytest.raises(Exception, match=r"closed|after close"):
        await own.client[name]["llm_clients"].count_documents({})


async def test_init_from_environment(
    mongo: AsyncMongoClient[dict[str, Any]],
    llmreq_engine: TestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = fresh_name(mongo)
    monkeypatch.setenv("LLMREQ_MONGODB_URI", llmreq_engine.uri)
    async with await llmreq_mongo.init(database=name) as handle:
        assert handle.database.name == name
        client = await LLMClient.objects.create(name="env")
        req = await LLMClientRequest.objects.create(llm_client=client, request={"ok": True})
        got = await LLMClientRequest.objects.get(id=req.id)
        assert got.created_at.tzinfo is not None
    monkeypatch.delenv("LLMREQ_MONGODB_URI")
    with pytest.raises(InvalidInput, match="LLMREQ_MONGODB_URI"):
        await llmreq_mongo.init()


async def test_reads_through_a_naive_client_are_still_utc(
    mongo: AsyncMongoClient[dict[str, Any]], llmreq_engine: TestServer
) -> None:
    naive: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(llmreq_engine.uri)
    try:
        await llmreq_mongo.init(naive, database=fresh_name(mongo))
        client = await LLMClient.objects.create(name="naive")
        req = await LLMClientRequest.objects.create(llm_client=client)
        got = await LLMClientRequest.objects.get(id=req.id)
        assert got.created_at == req.created_at
        assert got.created_at.utcoffset() is not None
    finally:
        await naive.close()


class AsyncIOMotorClient:
    """Stands in for Motor's client class, which is not (and must not be) installed."""

    __module__ = "motor.motor_asyncio"


async def test_motor_is_refused_with_the_migration() -> None:
    with pytest.raises(UnsupportedClient) as info:
        await llmreq_mongo.init(AsyncIOMotorClient())  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert "pymongo.AsyncMongoClient(uri)" in str(info.value)


@pytest.mark.parametrize("target", [42, object(), b"mongodb://x"], ids=repr)
async def test_unknown_targets_are_refused(target: Any) -> None:
    with pytest.raises(UnsupportedClient, match="takes a MongoDB URI"):
        await llmreq_mongo.init(target)


async def test_bad_uri_is_refused() -> None:
    with pytest.raises(InvalidInput, match="URI is not valid"):
        await llmreq_mongo.init("postgres://localhost")


async def test_unreachable_server_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="could not initialise"):
        await llmreq_mongo.init("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
