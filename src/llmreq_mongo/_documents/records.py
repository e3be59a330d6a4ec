"""The hot write path of request records: check the fields once, build the stored document.

``objects.create`` and the recorder both go through here, so a record is
refused with the same error and stored as the same document either way. The
document is exactly the one Beanie itself would store for the same values,
built without Beanie's per-document encoding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import bson
from bson import DBRef, ObjectId

from llmreq_mongo._capture import LLMResponse, response_document, response_from, without_body
from llmreq_mongo._checks import check_bool, check_session_key, check_timestamps, client_ref
from llmreq_mongo._queries import MAX_PAYLOAD_BYTES, encode_payload, normalize_payload
from llmreq_mongo.errors import PayloadTooLarge

__all__ = [
    "ValidatedRequest",
    "checked_response",
    "request_document",
    "stored_response_for",
    "validate_request",
]


class ValidatedRequest:
    """The checked values of one request record, ready to be stored."""

    __slots__ = (
        "client_id",
        "collection",
        "created_at",
        "is_aggregation",
        "payload",
        "response",
        "session_key",
        "stored",
        "stored_response",
        "updated_at",
    )

    def __init__(
        self,
        client_id: ObjectId,
        collection: str,
        payload: Any,
        stored: Any,
        session_key: str | None,
        is_aggregation: bool,
        created_at: dt.datetime | None = None,
        updated_at: dt.datetime | None = None,
        response: LLMResponse | None = None,
    ) -> None:
        self.client_id = client_id
        self.collection = collection
        self.payload = payload
        self.stored = stored
        self.session_key = session_key
        self.is_aggregation = is_aggregation
        #: The backfilled times, or None: the record is stamped when it is built.
        self.created_at = created_at
        self.updated_at = updated_at
        #: What came back, or None; and its stored form (the body escaped).
        self.response = response
        self.stored_response = None if response is None else response_document(response)


def validate_request(
    llm_client: Any,
    request: Any,
    session_key: Any,
    is_aggregation: Any,
    *,
    client_model: type[Any],
    created_at: Any = None,
    updated_at: Any = None,
    response: Any = None,
) -> ValidatedRequest:
    """Check the fields of one request record exactly as ``objects.create`` does.

    Args:
        client_model: the class ``llm_client`` must be (or link to).
        created_at: a backfill: the aware datetime the record is stored
            with, instead of the time it is built. None stamps it.
        updated_at: with ``created_at`` only; defaults to it.
        response: what came back: an :class:`LLMResponse`, a dict of its
            fields, or None. When request and response body together would
            not fit in one MongoDB document, the body is dropped and
            ``truncated`` set: the request is never the part that is lost.

    Raises:
        InvalidInput: a field is refused (``InvalidPayload`` for the payload
            or the response body; a naive or out-of-range time, or
            ``updated_at`` alone or before ``created_at``).
    """
    client_id, collection = client_ref(llm_client, model=client_model, write=True)
    key = check_session_key(session_key)
    check_bool("is_aggregation", is_aggregation)
    payload, needs_escape = normalize_payload(request)
    stored = encode_payload(payload) if needs_escape else payload
    answer = None if response is None else _fitting(stored, _response(response))
    if created_at is None and updated_at is None:
        return ValidatedRequest(
            client_id, collection, payload, stored, key, is_aggregation, response=answer
        )
    created, updated = check_timestamps(created_at, updated_at)
    return ValidatedRequest(
        client_id, collection, payload, stored, key, is_aggregation, created, updated, answer
    )


def checked_response(value: Any) -> LLMResponse:
    """``value`` (an ``LLMResponse`` or a dict of its fields) checked as ``validate_request`` does.

    A body too large for any document is dropped and ``truncated`` set.

    Raises:
        InvalidInput: a field is refused (``InvalidPayload`` for the body).
    """
    return _response(value)


def stored_response_for(stored_request: Any, response: LLMResponse) -> dict[str, Any]:
    """The stored form of ``response`` in the record whose stored request is ``stored_request``.

    As in ``validate_request``, the body is dropped (``truncated`` set) when
    request and body together would not fit in one document.
    """
    return response_document(_fitting(stored_request, response))


def _response(value: Any) -> LLMResponse:
    """``value`` as a response; a body too large for any document is dropped, not refused."""
    try:
        return response_from(value)
    except PayloadTooLarge:
        if not isinstance(value, Mapping):
            raise
        return response_from({**value, "body": None, "truncated": True})


def _fitting(stored_request: Any, response: LLMResponse) -> LLMResponse:
    """``response``, without its body if request and body would overflow a document."""
    if response.body is None:
        return response
    # Each part was checked alone; together they may still be too large.
    both = {"request": stored_request, "body": encode_payload(response.body)}
    if len(bson.encode(both)) > MAX_PAYLOAD_BYTES:
        return without_body(response)
    return response


#: DBRefs already built, by (collection, client id): every record of a client
#: shares one (a DBRef is never changed in place), which spares the hot path
#: building one per record. Bounded: cleared when full.
_CLIENT_REFS: dict[tuple[str, ObjectId], DBRef] = {}
_CLIENT_REFS_MAX = 1024


def _client_dbref(collection: str, client_id: ObjectId) -> DBRef:
    key = (collection, client_id)
    ref = _CLIENT_REFS.get(key)
    if ref is None:
        if len(_CLIENT_REFS) >= _CLIENT_REFS_MAX:
            _CLIENT_REFS.clear()
        ref = _CLIENT_REFS[key] = DBRef(collection, client_id)
    return ref


def request_document(
    checked: ValidatedRequest, *, record_id: ObjectId, now: dt.datetime
) -> dict[str, Any]:
    """The document stored for a request: the same keys, in the same order, as Beanie's.

    ``now`` stamps both times, unless the record carries backfilled ones.
    """
    return {
        "_id": record_id,
        "created_at": checked.created_at or now,
        "updated_at": checked.updated_at or now,
        "llm_client": _client_dbref(checked.collection, checked.client_id),
        "llm_client_id": checked.client_id,
        "request": checked.stored,
        "session_key": checked.session_key,
        "is_aggregation": checked.is_aggregation,
        "response": checked.stored_response,
    }
