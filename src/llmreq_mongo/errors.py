"""Every error llmreq-mongo raises, under one root.

The tree::

    LLMReqError
    ├── InvalidInput (ValueError, TypeError)    bad input, refused before any I/O
    │   ├── InvalidPayload                       ``request`` is not JSON
    │   │   └── PayloadTooLarge                  over MongoDB's 16 MiB document limit
    │   ├── InvalidLookup                        unknown field, lookup or lookup value
    │   ├── InvalidCursor                        a page cursor tampered with or from another query
    │   └── UnsupportedClient                    a Motor object where PyMongo's async client belongs
    ├── AlreadyExists                           a unique key (a client's name) is taken
    ├── DoesNotExist (LookupError)              ``get()`` found nothing
    ├── MultipleObjectsReturned                 ``get()`` found more than one
    ├── NotUpdated                              an update that matched no document
    ├── NotInitialized                          a document used before ``init()``
    ├── StorageError                            the server refused or could not be reached
    │   └── ServerUnreachable                    no MongoDB answered within the timeout
    ├── ExtraMissing (ImportError)              an optional extra is not installed
    ├── LifespanError                           the FastAPI lifespan is not running, or runs twice
    ├── ShardKeyConflict                        the collection is sharded on another key
    └── RecorderError                           the background recorder
        ├── RecorderFull                        the queue is full and ``on_full="raise"``
        ├── RecorderClosed                      ``record()`` on a recorder that is not running
        ├── RecordsNotWritten                   ``stop()`` or ``flush()`` left records unwritten
        ├── RecordRejected                      the server refused one record for good
        ├── SpillFileInUse                      another recorder holds the spill file
        └── SpillFileMismatch                   the spill file belongs to another database

Each document class carries its own ``DoesNotExist``, ``MultipleObjectsReturned``,
``NotUpdated`` and ``AlreadyExists`` subclasses (``LLMClientRequest.DoesNotExist``), as Django's
models do; catching the classes here catches them all.

:func:`storage_errors` maps the driver's exceptions into this tree; every module
that talks to MongoDB goes through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

__all__ = [
    "AlreadyExists",
    "DoesNotExist",
    "ExtraMissing",
    "InvalidCursor",
    "InvalidInput",
    "InvalidLookup",
    "InvalidPayload",
    "LLMReqError",
    "LifespanError",
    "MultipleObjectsReturned",
    "NotInitialized",
    "NotUpdated",
    "PayloadTooLarge",
    "RecorderClosed",
    "RecorderError",
    "RecorderFull",
    "RecordRejected",
    "RecordsNotWritten",
    "ServerUnreachable",
    "ShardKeyConflict",
    "SpillFileInUse",
    "SpillFileMismatch",
    "StorageError",
    "UnsupportedClient",
    "storage_errors",
]

_AUTHENTICATION_FAILED = 18


class LLMReqError(Exception):
    """The root of every error this library raises."""


class InvalidInput(LLMReqError, ValueError, TypeError):
    """A value passed to the library was refused before anything was sent.

    It is both a ``ValueError`` and a ``TypeError`` so that code written
    against either convention catches it.
    """


class InvalidPayload(InvalidInput):
    """The ``request`` payload is not a JSON value MongoDB can store exactly."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"request{path}: {message}")
        self.path = path


class PayloadTooLarge(InvalidPayload):
    """The payload would make the document exceed MongoDB's 16 MiB limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the payload encodes to {size:,} bytes of BSON, over the "
            f"{limit:,} bytes a record may hold; store large payloads elsewhere "
            "(for example GridFS or object storage) and record a reference"
        )
        self.size = size
        self.limit = limit


class InvalidLookup(InvalidInput):
    """An unknown field or lookup, or a value of the wrong kind for a lookup."""


class InvalidCursor(InvalidInput):
    """A page cursor that was altered, truncated, or made by another query."""


class UnsupportedClient(InvalidInput):
    """A Motor client or database was given where PyMongo's async one belongs."""


class AlreadyExists(LLMReqError):
    """An insert would duplicate a unique key, such as an LLM client's name.

    Attributes:
        key: the conflicting key and value (``{"name": "support-bot"}``), when
            the server said which.
    """

    def __init__(self, message: str, *, key: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.key = dict(key) if key is not None else None


class DoesNotExist(LLMReqError, LookupError):
    """``get()`` matched no document.

    Attributes:
        model: the document class that was searched.
        lookups: the lookups ``get()`` was given.
    """

    def __init__(
        self,
        message: str,
        *,
        model: type[Any] | None = None,
        lookups: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.lookups = dict(lookups or {})


class MultipleObjectsReturned(LLMReqError):
    """``get()`` matched more than one document.

    Attributes:
        model: the document class that was searched.
        lookups: the lookups ``get()`` was given.
    """

    def __init__(
        self,
        message: str,
        *,
        model: type[Any] | None = None,
        lookups: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.lookups = dict(lookups or {})


class NotUpdated(LLMReqError):
    """An update was expected to change a document that no longer matches.

    Attributes:
        document: the document that could not be updated.
    """

    def __init__(self, message: str, *, document: object = None) -> None:
        super().__init__(message)
        self.document = document


class NotInitialized(LLMReqError):
    """A document was used before :func:`llmreq_mongo.init` registered it.

    Attributes:
        model: the document class that was used.
    """

    def __init__(self, model: type[Any]) -> None:
        super().__init__(
            f"{model.__name__} is not initialised: call `await llmreq_mongo.init(uri)` "
            "(or init(client) / init(database)) before using the documents"
        )
        self.model = model


class StorageError(LLMReqError):
    """MongoDB refused an operation or could not be reached.

    The driver's exception is chained as ``__cause__``.
    """


class ServerUnreachable(StorageError):
    """No MongoDB server answered within the timeout (nothing listens, or a wrong address).

    The message is one line naming the address and what to check; the
    driver's error, with its full topology description, is the ``__cause__``.

    Attributes:
        addresses: the ``host:port`` addresses the driver tried.
        timeout: the seconds waited.
    """

    def __init__(self, message: str, *, addresses: tuple[str, ...], timeout: float) -> None:
        super().__init__(message)
        self.addresses = addresses
        self.timeout = timeout


class ExtraMissing(LLMReqError, ImportError):
    """A feature needs an optional extra that is not installed.

    Attributes:
        extra: the extra to install (``"embedded"``, ``"fastapi"``, ...).
    """

    def __init__(self, extra: str, *, feature: str) -> None:
        super().__init__(
            f'{feature} needs the "{extra}" extra, which is not installed: '
            f'pip install "llmreq-mongo[{extra}]"'
        )
        self.extra = extra


class LifespanError(LLMReqError):
    """The FastAPI lifespan was started twice, or is used while not running."""


class ShardKeyConflict(LLMReqError):
    """``llm_client_requests`` is already sharded, on a key other than the one asked for.

    MongoDB cannot shard a collection twice; changing its key is a
    ``reshardCollection`` the operator runs deliberately, never something
    the library does on its own.

    Attributes:
        namespace: ``database.collection``.
        existing: the key the collection is sharded on.
        wanted: the key that was asked for.
    """

    def __init__(
        self, namespace: str, existing: dict[str, object], wanted: dict[str, object]
    ) -> None:
        super().__init__(
            f"{namespace} is already sharded on {existing}, not {wanted}; leave it, or change "
            "its key with reshardCollection (see docs/scaling.md)"
        )
        self.namespace = namespace
        self.existing = existing
        self.wanted = wanted


class RecorderError(LLMReqError):
    """Base class for errors of the background :class:`~llmreq_mongo.Recorder`."""


class RecorderFull(RecorderError):
    """The recorder's queue is full and its ``on_full`` policy is ``"raise"``."""


class RecorderClosed(RecorderError):
    """A record was offered to a recorder that is not running."""


class RecordsNotWritten(RecorderError):
    """The recorder stopped with records it could not write or spill."""

    _ADVICE = (
        "Set spill_path to keep unwritten records on disk for replay, or raise the stop timeout"
    )

    def __init__(self, count: int, reason: str, *, advice: str | None = None) -> None:
        super().__init__(f"{count} record(s) were not written: {reason}. {advice or self._ADVICE}")
        self.count = count


class RecordRejected(RecorderError):
    """The server refused one record for good (a validator, say): it is not retried.

    The recorder logs it and passes it to its ``on_error`` callback with the
    document, so the record can be kept elsewhere; the rest of its batch is
    written as usual.

    Attributes:
        record_id: the ``_id`` of the refused record.
        code: the server's error code.
        details: the server's error message.
    """

    def __init__(self, record_id: object, code: int, details: str) -> None:
        super().__init__(
            f"the server refused record {record_id} (code {code}): {details}. It will not "
            "be retried; the on_error callback received the document"
        )
        self.record_id = record_id
        self.code = code
        self.details = details


class SpillFileInUse(RecorderError):
    """Another recorder, in this process or another, holds the spill file.

    Two recorders appending to and replaying one file lose records, so a
    spill file takes one recorder at a time.

    Attributes:
        path: the spill file.
    """

    def __init__(self, path: object) -> None:
        super().__init__(
            f"the spill file {path} is in use by another recorder; give each process its "
            "own spill file, for example spill_path='/var/lib/app/llmreq-{pid}.spill' "
            "({pid} becomes the process id)"
        )
        self.path = path


class SpillFileMismatch(RecorderError):
    """The spill file holds records of another database or collection.

    Nothing was replayed and the file is left as it is.

    Attributes:
        path: the spill file.
        expected: the namespace (``database.collection``) this recorder writes to.
        found: the namespaces the file's records belong to.
    """

    def __init__(self, path: object, expected: str, found: list[str]) -> None:
        super().__init__(
            f"the spill file {path} holds records of {', '.join(found)}, not of {expected}; "
            "it was left untouched. Replay it with a recorder on that database "
            "(init() with database=...), or give this recorder another spill_path"
        )
        self.path = path
        self.expected = expected
        self.found = found


def storage_errors(action: str) -> contextlib.AbstractContextManager[None]:
    """Re-raise driver errors as :class:`StorageError` naming what failed.

    Example::

        with storage_errors("insert LLMClientRequest"):
            await collection.insert_one(document)
    """
    return _StorageErrors(action)


class _StorageErrors:
    """:func:`storage_errors`' context manager: a class, as it guards every write.

    (A generator-based one costs several times as much to enter and leave.) No
    base class: ``AbstractContextManager`` has no ``__slots__``, and would give
    each instance a ``__dict__``.
    """

    __slots__ = ("_action",)

    def __init__(self, action: str) -> None:
        self._action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if not isinstance(exc, PyMongoError):
            return  # no error, or not the driver's: it goes on unchanged
        action = self._action
        if isinstance(exc, OperationFailure) and exc.code == _AUTHENTICATION_FAILED:
            raise StorageError(
                f"could not {action}: MongoDB refused the credentials; check the user "
                "name, the password and authSource in the URI"
            ) from exc
        raise StorageError(f"could not {action}: {exc}") from exc
