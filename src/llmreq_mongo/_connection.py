"""Connecting: ``init()`` checks its arguments, reaches MongoDB, registers the documents
with Beanie and makes the indexes.

Every argument is checked before anything is sent, so a bad one is an
``InvalidInput`` rather than a driver error. MongoDB must then answer a ping
within ``timeout`` seconds: when nothing listens the driver would wait out its
30 s server selection and report a kilobyte of topology, where ``init`` raises
a one-line ``ServerUnreachable`` naming the address.

Indexes are created by the library rather than by Beanie, because Beanie's
index creation fails when an index with the same keys already exists under
another name, and may drop indexes it does not know. Here an index is created
only when no index with the same keys exists, whatever its name, and nothing
is ever dropped.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import pymongo
from beanie import Document, init_beanie
from beanie.odm.fields import IndexModelField
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, ConnectionFailure, OperationFailure
from pymongo.errors import InvalidURI as DriverInvalidURI

from llmreq_mongo._documents import LLMClient, LLMClientRequest, TimestampedDocument
from llmreq_mongo._local_store import ENV_URI as ENV_URI
from llmreq_mongo.errors import (
    InvalidInput,
    ServerUnreachable,
    StorageError,
    UnsupportedClient,
    storage_errors,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Handle",
    "check_database_name",
    "check_document_models",
    "check_target",
    "check_timeout",
    "client_for",
    "ensure_indexes",
    "init",
]

#: Seconds ``init`` waits for MongoDB to answer before it gives up.
DEFAULT_TIMEOUT = 10.0
_MAX_TIMEOUT = 3600.0
# The characters PyMongo refuses in a database name (its InvalidName), and
# MongoDB's limit on the name's length.
_BAD_DATABASE_CHARS = frozenset(' ./\\\x00"$')
_MAX_DATABASE_BYTES = 63
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


def check_target(target: object) -> None:
    """Refuse a ``target`` that ``init`` cannot connect to, before anything is sent.

    Raises:
        UnsupportedClient: a Motor object (the message gives the one-line
            migration), or a value that is no URI, client or database.
        InvalidInput: an empty URI.
    """
    if _is_motor(target):
        raise UnsupportedClient(f"got a {type(target).__name__}. {_MOTOR_HINT}")
    if target is None or isinstance(target, (AsyncMongoClient, AsyncDatabase)):
        return
    if isinstance(target, str):
        if not target.strip():
            raise InvalidInput(
                "the MongoDB URI is empty: pass one such as 'mongodb://localhost:27017', "
                f"or None to read {ENV_URI}"
            )
        return
    raise UnsupportedClient(
        "init() takes a MongoDB URI, a pymongo.AsyncMongoClient or an AsyncDatabase; "
        f"got a {type(target).__name__}"
    )


def check_database_name(database: object) -> str:
    """``database`` if MongoDB accepts it as a database name.

    Raises:
        InvalidInput: not a string, empty, over 63 bytes, or holding a character
            MongoDB refuses in a name (space ``. / \\ " $`` or NUL).
    """
    if not isinstance(database, str) or not database:
        raise InvalidInput(f"database must be a database name such as 'llmreq', got {database!r}")
    bad = sorted(set(database) & _BAD_DATABASE_CHARS)
    if bad:
        raise InvalidInput(
            f"database {database!r} is not a valid MongoDB database name: it holds "
            f"{', '.join(repr(c) for c in bad)}; use letters, digits, '_' and '-'"
        )
    try:
        size = len(database.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            f"database {database!r} is not a valid MongoDB database name: it is not valid "
            "Unicode text"
        ) from None
    if size > _MAX_DATABASE_BYTES:
        raise InvalidInput(
            f"database {database!r} is not a valid MongoDB database name: it is {size} bytes "
            f"long, and MongoDB allows at most {_MAX_DATABASE_BYTES}"
        )
    return database


def check_timeout(timeout: object, *, name: str = "timeout") -> float:
    """``timeout`` as seconds, if it is a finite number above 0 and at most an hour.

    Raises:
        InvalidInput: anything else (``True`` included).
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= _MAX_TIMEOUT
    ):
        raise InvalidInput(
            f"{name} must be a number of seconds above 0 and at most {_MAX_TIMEOUT:g}, "
            f"got {timeout!r}"
        )
    return float(timeout)


def check_document_models(document_models: object) -> tuple[type[Document], ...]:
    """``document_models`` as a tuple, if it is a sequence of Beanie document classes.

    Raises:
        InvalidInput: a single class or a string instead of a sequence, or an
            item that is not a subclass of ``beanie.Document``.
    """
    if isinstance(document_models, (str, bytes, type)) or not isinstance(document_models, Sequence):
        raise InvalidInput(
            "document_models takes a sequence of Beanie document classes, such as "
            f"[MyDocument], got {document_models!r}"
        )
    for model in document_models:
        if not (isinstance(model, type) and issubclass(model, Document)):
            raise InvalidInput(
                "document_models takes Beanie document classes (subclasses of "
                f"beanie.Document), got {model!r}"
            )
    return tuple(document_models)


def _connect(
    target: str | AsyncMongoClient[Any] | AsyncDatabase[Any] | None, database: str
) -> Handle:
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
    assert isinstance(target, AsyncDatabase)  # check_target refused every other type
    return Handle(target.client, target, owns_client=False)


def _addresses(client: AsyncMongoClient[Any]) -> tuple[str, ...]:
    servers = client.topology_description.server_descriptions()
    return tuple(f"{host}:{port}" for host, port in servers)


def _short_reason(client: AsyncMongoClient[Any], exc: BaseException) -> str:
    """The driver's reason in a few words, without its topology dump."""
    errors = [
        d.error for d in client.topology_description.server_descriptions().values() if d.error
    ]
    text = str(errors[0] if errors else exc)
    text = text.split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
    # Per-server errors start with the address, which the message names already.
    head, sep, rest = text.partition(": ")
    if sep and ":" in head and " " not in head:
        text = rest
    return " ".join(text.split()) or type(exc).__name__


async def _reach(handle: Handle, timeout: float) -> None:
    """Ping MongoDB, giving up after ``timeout`` seconds with one line that says why."""
    # Under pymongo.timeout the driver selects a server for as long as the timeout
    # allows, ignoring serverSelectionTimeoutMS: keep a client's shorter setting.
    waited = min(timeout, handle.client.options.server_selection_timeout)
    # Refused credentials surface here too, in the handshake: storage_errors says so.
    with storage_errors("connect to MongoDB"):
        try:
            with pymongo.timeout(waited):
                await handle.database.command("ping")
        except ConnectionFailure as exc:  # server selection, connect and network timeouts
            raise _unreachable(handle, waited, exc) from exc


def _unreachable(handle: Handle, waited: float, exc: ConnectionFailure) -> ServerUnreachable:
    addresses = _addresses(handle.client)
    where = ", ".join(addresses) or "the address in the URI"
    return ServerUnreachable(
        f"could not reach MongoDB at {where} within {waited:g} s "
        f"({_short_reason(handle.client, exc)}): check that MongoDB is running there "
        "and that the URI's host, port, replicaSet and TLS options are right, or wait "
        "longer with init(timeout=...)",
        addresses=addresses,
        timeout=waited,
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
    timeout: float = DEFAULT_TIMEOUT,
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
        timeout: seconds MongoDB has to answer the connection check and
            the registration with Beanie (10 by default); creating a missing
            index is not cut short. A client's own ``serverSelectionTimeoutMS``
            still applies when it is shorter.

    Returns:
        A :class:`Handle`; ``await handle.close()`` closes a client that
        ``init`` created, never one it was given.

    Raises:
        UnsupportedClient: ``target`` is a Motor object (the message gives the
            one-line migration) or of an unknown type.
        InvalidInput: no target and no ``LLMREQ_MONGODB_URI``, a bad URI, a bad
            database name, ``document_models`` or ``timeout``.
        ServerUnreachable: no MongoDB answered within ``timeout`` (a
            ``StorageError``; the driver's error is its ``__cause__``).
        StorageError: MongoDB refused the set-up (credentials, permissions).
    """
    check_target(target)
    database = check_database_name(database)
    extra_models = check_document_models(document_models)
    timeout = check_timeout(timeout)
    handle = _connect(target, database)
    models: list[type[Document]] = [LLMClient, LLMClientRequest]
    models.extend(m for m in extra_models if m not in models)
    try:
        await _reach(handle, timeout)
        with storage_errors("initialise the database"):
            with pymongo.timeout(timeout):
                await init_beanie(
                    database=handle.database, document_models=models, skip_indexes=True
                )
            for model in models:
                await ensure_indexes(model)
    except BaseException:
        await handle.close()
        raise
    return handle
