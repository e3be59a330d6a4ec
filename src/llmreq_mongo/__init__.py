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
