"""llmreq-mongo: the request history of LLM clients, kept in MongoDB, for async Python.

Example::

    import llmreq_mongo
    from llmreq_mongo import LLMClient, LLMClientRequest

    handle = await llmreq_mongo.init("mongodb://localhost:27017")
    client = await LLMClient.objects.create(name="support-bot")
    await LLMClientRequest.objects.create(
        llm_client=client, request={"message": "Hello, llm_client!"}, session_key="abc123"
    )
    history = await LLMClientRequest.objects.filter(session_key="abc123").to_list()
    await handle.close()
"""

from __future__ import annotations

#: typing.TYPE_CHECKING without importing typing: the ``llmreq`` launcher
#: imports this package before it spawns the engine, and typing would be a
#: fifth of that import. Type checkers take any ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from llmreq_mongo._capture import LLMResponse, TokenUsage
    from llmreq_mongo._connection import Handle, init
    from llmreq_mongo._documents import (
        LLMClient,
        LLMClientRequest,
        LLMClientRequests,
        TimestampedDocument,
    )
    from llmreq_mongo._queries import Manager, Page, QuerySet
    from llmreq_mongo._recording.call import RecordedCall
    from llmreq_mongo._recording.recorder import Recorder, RecorderStats
    from llmreq_mongo._reports.rollups import RollupResult, aggregate_sessions
    from llmreq_mongo.errors import (
        AlreadyExists,
        DoesNotExist,
        ExtraMissing,
        InvalidCursor,
        InvalidInput,
        InvalidLookup,
        InvalidPayload,
        LifespanError,
        LLMReqError,
        MultipleObjectsReturned,
        NotInitialized,
        NotUpdated,
        PayloadTooLarge,
        RecorderClosed,
        RecorderError,
        RecorderFull,
        RecordRejected,
        RecordsNotWritten,
        ServerUnreachable,
        ShardKeyConflict,
        SpillFileInUse,
        SpillFileMismatch,
        StorageError,
        UnsupportedClient,
    )

__all__ = [
    "aggregate_sessions",
    "AlreadyExists",
    "DoesNotExist",
    "ExtraMissing",
    "Handle",
    "init",
    "InvalidCursor",
    "InvalidInput",
    "InvalidLookup",
    "InvalidPayload",
    "LifespanError",
    "LLMClient",
    "LLMClientRequest",
    "LLMClientRequests",
    "LLMReqError",
    "LLMResponse",
    "Manager",
    "MultipleObjectsReturned",
    "NotInitialized",
    "NotUpdated",
    "Page",
    "PayloadTooLarge",
    "QuerySet",
    "RecordedCall",
    "Recorder",
    "RecorderClosed",
    "RecorderError",
    "RecorderFull",
    "RecorderStats",
    "RecordRejected",
    "RecordsNotWritten",
    "RollupResult",
    "ServerUnreachable",
    "ShardKeyConflict",
    "SpillFileMismatch",
    "SpillFileInUse",
    "StorageError",
    "TimestampedDocument",
    "TokenUsage",
    "UnsupportedClient",
]

#: Where each public name is defined. The package imports nothing until a
#: name is used, so ``llmreq`` (and anything that imports one submodule)
#: does not pay for the ODM, the recorder and the reports it does not use.
_SOURCES = {
    "aggregate_sessions": "llmreq_mongo._reports.rollups",
    "AlreadyExists": "llmreq_mongo.errors",
    "DoesNotExist": "llmreq_mongo.errors",
    "ExtraMissing": "llmreq_mongo.errors",
    "Handle": "llmreq_mongo._connection",
    "init": "llmreq_mongo._connection",
    "InvalidCursor": "llmreq_mongo.errors",
    "InvalidInput": "llmreq_mongo.errors",
    "InvalidLookup": "llmreq_mongo.errors",
    "InvalidPayload": "llmreq_mongo.errors",
    "LifespanError": "llmreq_mongo.errors",
    "LLMClient": "llmreq_mongo._documents",
    "LLMClientRequest": "llmreq_mongo._documents",
    "LLMClientRequests": "llmreq_mongo._documents",
    "LLMReqError": "llmreq_mongo.errors",
    "LLMResponse": "llmreq_mongo._capture",
    "Manager": "llmreq_mongo._queries",
    "MultipleObjectsReturned": "llmreq_mongo.errors",
    "NotInitialized": "llmreq_mongo.errors",
    "NotUpdated": "llmreq_mongo.errors",
    "Page": "llmreq_mongo._queries",
    "PayloadTooLarge": "llmreq_mongo.errors",
    "QuerySet": "llmreq_mongo._queries",
    "RecordedCall": "llmreq_mongo._recording.call",
    "Recorder": "llmreq_mongo._recording.recorder",
    "RecorderClosed": "llmreq_mongo.errors",
    "RecorderError": "llmreq_mongo.errors",
    "RecorderFull": "llmreq_mongo.errors",
    "RecorderStats": "llmreq_mongo._recording.recorder",
    "RecordRejected": "llmreq_mongo.errors",
    "RecordsNotWritten": "llmreq_mongo.errors",
    "RollupResult": "llmreq_mongo._reports.rollups",
    "ServerUnreachable": "llmreq_mongo.errors",
    "ShardKeyConflict": "llmreq_mongo.errors",
    "SpillFileInUse": "llmreq_mongo.errors",
    "SpillFileMismatch": "llmreq_mongo.errors",
    "StorageError": "llmreq_mongo.errors",
    "TimestampedDocument": "llmreq_mongo._documents",
    "TokenUsage": "llmreq_mongo._capture",
    "UnsupportedClient": "llmreq_mongo.errors",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import a public name on first use, and keep it (PEP 562)."""
        import importlib

        module = _SOURCES.get(name)
        if module is None:
            if name == "errors":  # bound by the imports before they were lazy
                return importlib.import_module(f"{__name__}.errors")
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_SOURCES})
