"""Connecting: ``init()`` registers the documents with Beanie and makes the indexes.

Indexes are created by the library rather than by Beanie, because Beanie's
index creation fails when an index with the same keys already exists under
another name, and may drop indexes it does not know. Here an index is created
only when no index with the same keys exists, whatever its name, and nothing
is ever dropped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

from beanie import Document, init_beanie
from beanie.odm.fields import IndexModelField
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, OperationFailure
from pymongo.errors import InvalidURI as DriverInvalidURI

from llmreq_mongo._checks import a_type
from llmreq_mongo._documents import LLMClient, LLMClientRequest, TimestampedDocument
from llmreq_mongo.errors import InvalidInput, StorageError, UnsupportedClient, storage_errors

__all__ = ["Handle", "client_for", "ensure_indexes", "init"]

ENV_URI = "LLMREQ_MONGODB_URI"
_TIMESTAMP_INDEXES = (
    IndexModel([("created_at", 1)], name="llmreq_created_at"),
    IndexModel([("updated_at", 1)], name="llmreq_updated_at"),
)
_MOTOR_HINT = (
    "Motor is deprecated and Beanie 2 cannot run on it: replace "
    "`motor.motor_asyncio.AsyncIOMotorClient(uri)` with `pymongo.AsyncMongoClient(uri)`"
)


class Handle:
    """What :func:`init` connected to.

    Attributes:
        client: the ``AsyncMongoClient`` in use.
        database: the ``AsyncDatabase`` the documents live in.
    """

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: AsyncDatabase[dict[str, Any]],
        *,
        owns_client: bool,
    ) -> None:
        self.client = client
        self.database = database
        self._owns_client = owns_client

    async def close(self) -> None:
        """Close the client if ``init`` created it; a client you passed in stays open."""
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> Handle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Handle(database={self.database.name!r}, owns_client={self._owns_client})"


def _is_motor(target: object) -> bool:
    return type(target).__module__.startswith("motor")


def client_for(uri: str, **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    """A timezone-aware client for ``uri``; an option PyMongo cannot read is an error.

    PyMongo only warns about an option value it cannot read and goes on
    without it, so ``tls=ture`` would quietly mean a plaintext connection.

    Raises:
        InvalidInput: the URI is malformed or has an option PyMongo cannot read.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                uri, tz_aware=True, **options
            )
        except (DriverInvalidURI, ConfigurationError, ValueError, TypeError) as exc:
            raise InvalidInput(f"the MongoDB URI is not valid: {exc}") from None
    refused = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if refused:
        raise InvalidInput(
            f"the MongoDB URI has an option PyMongo cannot read ({'; '.join(refused)}); "
            "fix or remove it"
        )
    return client


def _connect(
    target: str | AsyncMongoClient[Any] | AsyncDatabase[Any] | None, database: str
) -> Handle:
    if _is_motor(target):
        raise UnsupportedClient(f"got {a_type(target)}. {_MOTOR_HINT}")
    if target is None:
        target = os.environ.get(ENV_URI)
        if not target:
            raise InvalidInput(
                f"no MongoDB to connect to: pass a URI or client to init(), or set {ENV_URI}"
            )
    if isinstance(target, str):
        client = client_for(target)
        return Handle(client, client[database], owns_client=True)
    if isinstance(target, AsyncMongoClient):
        return Handle(target, target[database], owns_client=False)
    if isinstance(target, AsyncDatabase):
        return Handle(target.client, target, owns_client=False)
    raise UnsupportedClient(
        "init() takes a MongoDB URI, a pymongo.AsyncMongoClient or an AsyncDatabase; "
        f"got {a_type(target)}"
    )


async def ensure_indexes(model: type[Document]) -> list[str]:
    """Create the indexes ``model`` declares that do not exist yet (by keys, any name).

    Returns:
        The names of the indexes created.
    """
    # Beanie keeps declared indexes wrapped in its IndexModelField.
    declared = model.get_settings().indexes or []
    wanted = [i.index if isinstance(i, IndexModelField) else i for i in declared]
    if issubclass(model, TimestampedDocument):
        wanted.extend(_TIMESTAMP_INDEXES)
    coll = model.get_pymongo_collection()
    with storage_errors(f"list the indexes of {coll.name}"):
        existing = {tuple(info["key"].items()) async for info in await coll.list_indexes()}
    created: list[str] = []
    for index in wanted:
        spec = index.document
        keys = tuple(spec["key"].items())
        if keys in existing:
            continue
        options = {k: v for k, v in spec.items() if k != "key"}
        try:
            name = await coll.create_index(list(keys), **options)
        except OperationFailure as exc:
            raise StorageError(
                f"could not create index {spec.get('name')!r} on {coll.name}: {exc}"
            ) from exc
        created.append(name)
        existing.add(keys)
    return created


async def init(
    target: str | AsyncMongoClient[Any] | AsyncDatabase[Any] | None = None,
    *,
    database: str = "llmreq",
    document_models: Sequence[type[Document]] = (),
) -> Handle:
    """Connect, register the documents with Beanie, and create the indexes.

    Safe to run on every start: it changes nothing on a database that is
    already set up, never drops an index, and accepts indexes someone else
    made with the same keys under another name.

    Args:
        target: a MongoDB URI, a ``pymongo.AsyncMongoClient`` or an
            ``AsyncDatabase``; None reads ``LLMREQ_MONGODB_URI``.
        database: the database to use when ``target`` is a URI or client.
        document_models: your own Beanie documents, registered alongside ours.

    Returns:
        A :class:`Handle`; ``await handle.close()`` closes a client that
        ``init`` created, never one it was given.

    Raises:
        UnsupportedClient: ``target`` is a Motor object (the message gives the
            one-line migration) or of an unknown type.
        InvalidInput: no target and no ``LLMREQ_MONGODB_URI``, or a bad URI.
        StorageError: MongoDB could not be reached or refused the set-up.
    """
    handle = _connect(target, database)
    models: list[type[Document]] = [LLMClient, LLMClientRequest]
    models.extend(m for m in document_models if m not in models)
    try:
        with storage_errors("initialise the database"):
            await init_beanie(database=handle.database, document_models=models, skip_indexes=True)
            for model in models:
                await ensure_indexes(model)
    except BaseException:
        await handle.close()
        raise
    return handle
