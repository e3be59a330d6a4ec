"""``shard_requests`` and ``llmreq shard``: shard on mongos, leave anything else alone."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from llmreq_mongo import Handle, init
from llmreq_mongo._cli import app
from llmreq_mongo._sharding import (
    SHARD_INDEX_NAME,
    SHARD_KEY,
    shard_collection_command,
    shard_key_filter,
    shard_requests,
)
from llmreq_mongo.errors import LLMReqError, ShardKeyConflict
from llmreq_mongo.pytest_plugin import TestServer

from ._capture import CommandCapture


def test_the_command_is_shard_collection_on_the_chosen_key() -> None:
    assert shard_collection_command("llmreq.llm_client_requests") == {
        "shardCollection": "llmreq.llm_client_requests",
        "key": {"llm_client_id": 1, "session_key": 1, "_id": 1},
    }
    assert list(shard_collection_command("d.c", {"a": "hashed"})["key"]) == ["a"]
    # Field order is the key's order: a range key is read left to right.
    assert list(SHARD_KEY) == ["llm_client_id", "session_key", "_id"]


def test_the_key_filter_targets_a_record_without_a_session_key() -> None:
    assert shard_key_filter(1, None, 2) == {"llm_client_id": 1, "session_key": None, "_id": 2}


def test_a_conflicting_key_is_a_typed_error_with_context() -> None:
    exc = ShardKeyConflict("d.c", {"a": 1}, dict(SHARD_KEY))
    assert isinstance(exc, LLMReqError)
    assert exc.existing == {"a": 1} and exc.wanted == SHARD_KEY
    assert "reshardCollection" in str(exc)


async def test_off_mongos_nothing_but_hello_is_sent_and_nothing_changes(
    llmreq_engine: TestServer,
) -> None:
    if not llmreq_engine.embedded:
        pytest.skip("MONGODB_URI may be a mongos: this test needs a server that is not one")
    capture = CommandCapture()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        llmreq_engine.uri, event_listeners=[capture]
    )
    name = f"llmreq_shard_{uuid.uuid4().hex[:10]}"
    try:
        handle = await init(client, database=name)
        coll = handle.database["llm_client_requests"]
        before = await coll.index_information()
        with capture.operation("shard"):
            result = await shard_requests(handle.database)
        again = await shard_requests(handle.database)
        assert result.outcome == again.outcome == "not_mongos"
        assert not result.changed
        assert "not mongos" in result.reason and "replica set" in result.reason
        assert result.namespace == f"{name}.llm_client_requests"
        assert [c.name for c in capture.commands] == ["hello"]
        after = await coll.index_information()
        assert after == before and SHARD_INDEX_NAME not in after
    finally:
        await client.drop_database(name)
        await client.close()


def test_llmreq_shard_says_why_it_left_the_collection_alone(llmreq_engine: TestServer) -> None:
    if not llmreq_engine.embedded:
        pytest.skip("MONGODB_URI may be a mongos: this test needs a server that is not one")
    name = f"llmreq_shard_{uuid.uuid4().hex[:10]}"
    base = ["--uri", llmreq_engine.uri, "--database", name]
    try:
        text = CliRunner().invoke(app, [*base, "shard"], catch_exceptions=False)
        assert text.exit_code == 0, text.output
        assert "not mongos" in text.output and "left unsharded" in text.output
        out = CliRunner().invoke(app, [*base, "shard", "--json"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        data = json.loads(out.output)
        assert data["outcome"] == "not_mongos"
        assert data["key"] == {"llm_client_id": 1, "session_key": 1, "_id": 1}
    finally:
        import pymongo

        with pymongo.MongoClient[dict[str, Any]](llmreq_engine.uri) as sync:
            sync.drop_database(name)


async def test_on_a_real_cluster_it_shards_once(
    llmreq_db: Handle, llmreq_engine: TestServer
) -> None:
    hello = await llmreq_db.client.admin.command("hello")
    if hello.get("msg") != "isdbgrid":
        pytest.skip("needs MONGODB_URI pointing at a mongos (docker-compose.sharded.yml)")
    first = await shard_requests(llmreq_db.database)
    second = await shard_requests(llmreq_db.database)
    assert first.outcome == "sharded" and second.outcome == "already_sharded"
    with pytest.raises(ShardKeyConflict):
        await shard_requests(llmreq_db.database, key={"_id": "hashed"})
