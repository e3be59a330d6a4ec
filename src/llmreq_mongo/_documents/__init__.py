"""The documents layer: the stored models and their managers.

It sits on the queries layer (:mod:`llmreq_mongo._queries`) and the leaves,
and is what the reports, the recorder and everything above build on.
"""

from .base import TimestampedDocument
from .managers import RequestManager
from .models import LLMClient, LLMClientRequest, LLMClientRequests, verify_clients
from .records import (
    EncodedRecord,
    ValidatedRequest,
    checked_response,
    encode_request,
    new_record_id,
    request_document,
    validate_request,
)

__all__ = [
    "EncodedRecord",
    "LLMClient",
    "LLMClientRequest",
    "LLMClientRequests",
    "RequestManager",
    "TimestampedDocument",
    "ValidatedRequest",
    "checked_response",
    "encode_request",
    "new_record_id",
    "request_document",
    "validate_request",
    "verify_clients",
]
