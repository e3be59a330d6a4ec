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
    ├── StorageError                            the server refused or could not be reached
    │   └── ServerUnreachable                    no MongoDB answered within the timeout
    ├── EmbeddedEngineMissing (ImportError)     the ``embedded`` extra is not installed
    └── RecorderError                           the background recorder
        ├── RecorderFull                        the queue is full and ``on_full="raise"``
        ├── RecorderClosed                      ``record()`` on a recorder that is not running
        ├── RecordsNotWritten                   ``stop()`` or ``flush()`` left records unwritten
        └── RecordRejected                      the server refused one record for good

Each document class carries its own ``DoesNotExist``, ``MultipleObjectsReturned``,
``NotUpdated`` and ``AlreadyExists`` subclasses (``LLMClientRequest.DoesNotExist``), as Django's
models do; catching the classes here catches them all.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "DoesNotExist",
    "EmbeddedEngineMissing",
    "InvalidCursor",
    "InvalidInput",
    "InvalidLookup",
    "InvalidPayload",
    "LLMReqError",
    "MultipleObjectsReturned",
    "NotUpdated",
    "PayloadTooLarge",
    "RecorderClosed",
    "RecorderError",
    "RecorderFull",
    "RecordRejected",
    "RecordsNotWritten",
    "ServerUnreachable",
    "StorageError",
    "UnsupportedClient",
]


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
    """An insert would duplicate a unique key, such as an LLM client's name."""


class DoesNotExist(LLMReqError, LookupError):
    """``get()`` matched no document."""


class MultipleObjectsReturned(LLMReqError):
    """``get()`` matched more than one document."""


class NotUpdated(LLMReqError):
    """An update was expected to change a document that no longer matches."""


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


class EmbeddedEngineMissing(LLMReqError, ImportError):
    """The embedded engine was asked for without the ``embedded`` extra."""


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
