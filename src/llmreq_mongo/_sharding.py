"""Sharding ``llm_client_requests`` on a cluster: the shard key and ``shardCollection``.

The key is ``{llm_client_id: 1, session_key: 1, _id: 1}`` (docs/scaling.md
compares it with the alternatives): a client's requests, and a session's
within them, sit in one key range, so the queries that name a client or a
session are targeted; ``_id`` at the end makes every value unique, so no
chunk is ever too big to split (a huge session, or the records without a
session key, split by ``_id``).

:func:`shard_requests` shards the collection when the connection is to a
``mongos`` and leaves it alone anywhere else, saying why. It is idempotent.
:func:`shard_key_filter` gives the equality on the full key that every write
aimed at one record carries, so mongos routes it to one shard and accepts it
as an upsert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from .errors import ShardKeyConflict, StorageError

__all__ = [
    "SHARD_INDEX_NAME",
    "SHARD_KEY",
    "ShardOutcome",
    "ShardResult",
    "shard_collection_command",
    "shard_key_filter",
    "shard_requests",
]

#: The shard key of ``llm_client_requests`` (field order matters: it is a range key).
SHARD_KEY: dict[str, Any] = {"llm_client_id": 1, "session_key": 1, "_id": 1}
#: The index that supports it (``shardCollection`` needs one on a non-empty collection).
SHARD_INDEX_NAME = "llmreq_shard_key"
_COLLECTION = "llm_client_requests"

ShardOutcome = Literal["sharded", "already_sharded", "not_mongos"]


@dataclass(frozen=True)
class ShardResult:
    """What :func:`shard_requests` did.

    Attributes:
        outcome: ``"sharded"`` (done now), ``"already_sharded"`` (on this key,
            nothing sent), or ``"not_mongos"`` (left alone).
        namespace: ``database.collection``.
        key: the shard key.
        reason: one sentence saying what happened and why.
    """

    outcome: ShardOutcome
    namespace: str
    key: dict[str, Any]
    reason: str

    @property
    def changed(self) -> bool:
        """True when this call sharded the collection."""
        return self.outcome == "sharded"


def shard_collection_command(namespace: str, key: Mapping[str, Any] = SHARD_KEY) -> dict[str, Any]:
    """The ``shardCollection`` admin command for ``namespace`` (a pure function).

    MongoDB 6.0 and later need no ``enableSharding`` first.
    """
    return {"shardCollection": namespace, "key": dict(key)}


def shard_key_filter(llm_client_id: Any, session_key: str | None, record_id: Any) -> dict[str, Any]:
    """Equality on the full shard key: the filter of a write aimed at one record.

    A record without a session key stores ``session_key: null``; the equality
    on ``None`` matches it (MongoDB's documented way to target such a record).
    """
    return {"llm_client_id": llm_client_id, "session_key": session_key, "_id": record_id}


def _describe_topology(hello: Mapping[str, Any]) -> str:
    if hello.get("setName"):
        return f"a replica set member (setName {hello['setName']!r})"
    return "a standalone server"


async def shard_requests(
    database: AsyncDatabase[Any], *, key: Mapping[str, Any] = SHARD_KEY
) -> ShardResult:
    """Shard ``llm_client_requests`` on ``key`` when connected to mongos; else leave it.

    The connection is to mongos when the ``hello`` reply says
    ``msg: "isdbgrid"``. On a replica set or standalone server nothing is
    sent beyond ``hello``. On mongos the supporting index is created if
    missing, then ``shardCollection`` runs; a collection already sharded on
    ``key`` is left as it is.

    Raises:
        ShardKeyConflict: the collection is sharded on another key.
        StorageError: the server refused (no permission, say) or is unreachable.
    """
    wanted = dict(key)
    namespace = f"{database.name}.{_COLLECTION}"
    try:
        hello = await database.client.admin.command("hello")
        if hello.get("msg") != "isdbgrid":
            return ShardResult(
                "not_mongos",
                namespace,
                wanted,
                f"connected to {_describe_topology(hello)}, not mongos: {namespace} is left "
                "unsharded (run this against a sharded cluster's mongos)",
            )
        config = database.client.get_database("config")
        existing = await config["collections"].find_one({"_id": namespace})
        if existing is not None and existing.get("key") is not None and not existing.get("dropped"):
            current = dict(existing["key"])
            if current != wanted:
                raise ShardKeyConflict(namespace, current, wanted)
            return ShardResult(
                "already_sharded",
                namespace,
                wanted,
                f"{namespace} is already sharded on {wanted}; nothing to do",
            )
        await database[_COLLECTION].create_index(list(wanted.items()), name=SHARD_INDEX_NAME)
        await database.client.admin.command(shard_collection_command(namespace, wanted))
    except OperationFailure as exc:
        raise StorageError(f"could not shard {namespace}: {exc}") from exc
    except PyMongoError as exc:
        raise StorageError(f"could not reach the cluster to shard {namespace}: {exc}") from exc
    return ShardResult("sharded", namespace, wanted, f"{namespace} is now sharded on {wanted}")
