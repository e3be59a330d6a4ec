"""init(): targets, idempotent indexes, ownership of the client, and refusals."""

from __future__ import annotations

import asyncio
import math
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from beanie import Document
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

import llmreq_mongo
from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, StorageError
from llmreq_mongo.errors import ServerUnreachable, UnsupportedClient
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
    mongo.test_names.append(name)
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
    # The URI's own serverSelectionTimeoutMS is shorter than init's timeout: it wins.
    uri = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"
    with pytest.raises(
        StorageError, match=r"could not reach MongoDB at 127\.0\.0\.1:1 within 0\.3 s"
    ):
        await asyncio.wait_for(llmreq_mongo.init(uri, timeout=60), 20)


# -- every bad argument is refused before anything is sent ------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"database": "a.b"}, r"database 'a\.b' is not a valid MongoDB database name.*'\.'"),
        ({"database": "my db"}, "not a valid MongoDB database name"),
        ({"database": "a/b"}, "not a valid MongoDB database name"),
        ({"database": "a\\b"}, "not a valid MongoDB database name"),
        ({"database": 'a"b'}, "not a valid MongoDB database name"),
        ({"database": "a$b"}, "not a valid MongoDB database name"),
        ({"database": "a\x00b"}, "not a valid MongoDB database name"),
        ({"database": "\ud800"}, "not valid Unicode"),
        ({"database": "d" * 64}, "64 bytes long, and MongoDB allows at most 63"),
        ({"database": ""}, "database must be a database name"),
        ({"database": 42}, "database must be a database name"),
        ({"database": None}, "database must be a database name"),
        ({"document_models": "myapp.MyDocument"}, "sequence of Beanie document classes"),
        ({"document_models": LLMClient}, "sequence of Beanie document classes"),
        ({"document_models": [object]}, "subclasses of beanie.Document"),
        ({"document_models": [42]}, "subclasses of beanie.Document"),
        ({"document_models": 42}, "sequence of Beanie document classes"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0"),
        ({"timeout": -1}, "timeout must be"),
        ({"timeout": True}, "timeout must be"),
        ({"timeout": "10"}, "timeout must be"),
        ({"timeout": None}, "timeout must be"),
        ({"timeout": math.nan}, "timeout must be"),
        ({"timeout": math.inf}, "timeout must be"),
        ({"timeout": 3601}, "at most 3600"),
    ],
    ids=repr,
)
async def test_bad_arguments_are_invalid_input_before_connecting(
    silent_port: int, arguments: dict[str, Any], message: str
) -> None:
    # Nothing listens there: a check made after connecting would fail differently.
    with pytest.raises(InvalidInput, match=message) as info:
        await llmreq_mongo.init(f"mongodb://127.0.0.1:{silent_port}/", **arguments)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["", "   "], ids=repr)
async def test_an_empty_uri_is_refused(target: str) -> None:
    with pytest.raises(InvalidInput, match="URI is empty"):
        await llmreq_mongo.init(target)


async def test_a_valid_unusual_database_name_is_accepted(
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    name = fresh_name(mongo) + "-é"
    handle = await llmreq_mongo.init(mongo, database=name)
    assert handle.database.name == name


class Note(Document):
    """A document of the application's own, registered alongside the library's."""

    text: str

    class Settings:
        name = "notes"


async def test_own_documents_are_registered(mongo: AsyncMongoClient[dict[str, Any]]) -> None:
    await llmreq_mongo.init(mongo, database=fresh_name(mongo), document_models=(Note,))
    await Note(text="hello").insert()
    assert [n.text for n in await Note.find_all().to_list()] == ["hello"]


# -- nothing answers: one line, the address, a bounded wait -----------------------------------


def assert_one_line_naming(exc: ServerUnreachable, address: str) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 400, text
    assert f"at {address} within" in text
    assert "check that MongoDB is running" in text
    assert "Topology Description" not in text and "configured timeouts" not in text
    assert isinstance(exc, StorageError)
    assert isinstance(exc.__cause__, PyMongoError)  # the driver's own error, in full
    assert exc.addresses == (address,)


async def test_nothing_listening_fails_within_the_timeout_with_one_line(silent_port: int) -> None:
    address = f"127.0.0.1:{silent_port}"
    # The bound turns the driver's 30 s wait into a failure instead of a slow pass.
    with pytest.raises(ServerUnreachable) as info:
        await asyncio.wait_for(llmreq_mongo.init(f"mongodb://{address}/", timeout=0.5), 20)
    assert_one_line_naming(info.value, address)
    assert info.value.timeout == 0.5
    assert "within 0.5 s" in str(info.value)


async def test_the_default_timeout_is_ten_seconds(silent_port: int) -> None:
    address = f"127.0.0.1:{silent_port}"
    with pytest.raises(ServerUnreachable) as info:
        await asyncio.wait_for(llmreq_mongo.init(f"mongodb://{address}/"), 25)
    assert_one_line_naming(info.value, address)
    assert info.value.timeout == (llmreq_mongo.init.__kwdefaults__ or {})["timeout"] == 10


async def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    """Something listens and accepts, but never speaks MongoDB's protocol."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep the connection open, say nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ServerUnreachable) as info:
            await asyncio.wait_for(
                llmreq_mongo.init(f"mongodb://127.0.0.1:{port}/", timeout=0.5), 20
            )
        assert_one_line_naming(info.value, f"127.0.0.1:{port}")
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_given_clients_shorter_selection_timeout_is_the_one_reported(
    silent_port: int,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{silent_port}/", serverSelectionTimeoutMS=300
    )
    try:
        with pytest.raises(ServerUnreachable, match=r"within 0\.3 s") as info:
            # were the client's setting ignored, init would wait 60 s and hit the bound
            await asyncio.wait_for(llmreq_mongo.init(client, timeout=60), 20)
        assert info.value.timeout == 0.3
    finally:
        await client.close()
