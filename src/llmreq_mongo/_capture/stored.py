"""An :class:`LLMResponse` in its stored form, and back.

A record's ``response`` is stored as a sub-document with one key per field,
in the field order of :class:`LLMResponse`, so that lookups reach every field
(``response.usage.output_tokens``) and the body is queryable as the request
is. The body is stored exactly as a request payload is: awkward keys escaped
(see :mod:`llmreq_mongo._queries.payload`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from bson import Int64

from llmreq_mongo._queries import decode_payload, stored_payload
from llmreq_mongo._time import to_utc_ms
from llmreq_mongo.errors import InvalidInput

from .models import LLMResponse, TokenUsage

__all__ = ["plain_response", "response_document", "stored_response", "without_body"]

_USAGE_FIELDS = tuple(TokenUsage.model_fields)
_RESPONSE_FIELDS = frozenset(LLMResponse.model_fields)


_ESCAPE = object()


def response_document(response: LLMResponse, body: Any = _ESCAPE) -> dict[str, Any]:
    """The sub-document stored for ``response``: every field, the body escaped.

    ``body`` is the stored body when the caller has it already: the body
    itself, for a record whose encoder makes the key checks (see
    :mod:`llmreq_mongo._queries.plain`).
    """
    # Only read from here on (encoded and dropped): the body is copied only when escaped.
    stored_body = stored_payload(response.body) if body is _ESCAPE else body
    usage = response.usage
    if type(response) is LLMResponse and (usage is None or type(usage) is TokenUsage):
        # On the hot path: a model's __dict__ is its fields, in their order, and
        # copying it is one call where reading the fields one by one is many.
        stored = dict(response.__dict__)
        stored["body"] = stored_body
        stored["finish_reasons"] = list(response.finish_reasons)
        stored["usage"] = None if usage is None else dict(usage.__dict__)
        return stored
    return {
        "status": response.status,
        "body": stored_body,
        "model": response.model,
        "response_id": response.response_id,
        "finish_reasons": list(response.finish_reasons),
        "usage": None if usage is None else {name: getattr(usage, name) for name in _USAGE_FIELDS},
        "error": response.error,
        "stream": response.stream,
        "latency_ms": response.latency_ms,
        "ttft_ms": response.ttft_ms,
        "completed_at": response.completed_at,
        "truncated": response.truncated,
    }


def without_body(response: LLMResponse) -> LLMResponse:
    """``response`` with its body dropped and ``truncated`` set: what a record keeps
    when request and response together would not fit in one document."""
    return response.model_copy(update={"body": None, "truncated": True})


def plain_response(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored response as plain values: the body decoded, times aware UTC, ints plain.

    Fields the stored document has and this version does not know are left
    out, so a record written by a newer version still reads.
    """
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _RESPONSE_FIELDS:
            continue
        if key == "body":
            value = decode_payload(value)
        elif key == "usage" and isinstance(value, Mapping):
            value = {
                name: int(count) if type(count) is Int64 else count
                for name, count in value.items()
                if name in _USAGE_FIELDS
            }
        elif type(value) is Int64:
            value = int(value)
        elif isinstance(value, dt.datetime):
            value = to_utc_ms(value)
        fields[key] = value
    return fields


def stored_response(raw: Any) -> LLMResponse | None:
    """The :class:`LLMResponse` of a stored record's ``response`` (None stays None).

    Raises:
        InvalidInput: the stored value is not a response (a record changed
            by hand to something this library would not write).
    """
    if raw is None or isinstance(raw, LLMResponse):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"a stored response must be a sub-document, got {type(raw).__name__}")
    return LLMResponse(**plain_response(raw))
