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

from ._base import TimestampedDocument
from ._connection import Handle, init
from ._documents import LLMClient, LLMClientRequest, LLMClientRequests
from ._pagination import Page
from ._queryset import Manager, QuerySet
from ._recorder import Recorder, RecorderStats
from ._rollups import RollupResult, aggregate_sessions
from .errors import (
    AlreadyExists,
    DoesNotExist,
    InvalidCursor,
    InvalidInput,
    InvalidLookup,
    InvalidPayload,
    LLMReqError,
    MultipleObjectsReturned,
    NotUpdated,
    PayloadTooLarge,
    StorageError,
)

__all__ = [
    "AlreadyExists",
    "DoesNotExist",
    "Handle",
    "InvalidCursor",
    "InvalidInput",
    "InvalidLookup",
    "InvalidPayload",
    "LLMClient",
    "LLMClientRequest",
    "LLMClientRequests",
    "LLMReqError",
    "Manager",
    "MultipleObjectsReturned",
    "NotUpdated",
    "Page",
    "PayloadTooLarge",
    "QuerySet",
    "Recorder",
    "RecorderStats",
    "RollupResult",
    "StorageError",
    "TimestampedDocument",
    "aggregate_sessions",
    "init",
]
