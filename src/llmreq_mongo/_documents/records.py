"""The hot write path of request records: check the fields once, build the stored document.

``objects.create`` and the recorder both go through here, so a record is
refused with the same error and stored as the same document either way. The
document is exactly the one Beanie itself would store for the same values,
built without Beanie's per-document encoding.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import DBRef, ObjectId

from llmreq_mongo._checks import check_bool, check_session_key, check_timestamps, client_ref
from llmreq_mongo._queries import encode_payload, normalize_payload

__all__ = ["ValidatedRequest", "request_document", "validate_request"]


class ValidatedRequest:
    """The checked values of one request record, ready to be stored."""

    __slots__ = (
        "client_id",
        "collection",
        "created_at",
        "is_aggregation",
        "payload",
        "session_key",
        "stored",
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


def validate_request(
    llm_client: Any,
    request: Any,
    session_key: Any,
    is_aggregation: Any,
    *,
    client_model: type[Any],
    created_at: Any = None,
    updated_at: Any = None,
) -> ValidatedRequest:
    """Check the fields of one request record exactly as ``objects.create`` does.

    Args:
        client_model: the class ``llm_client`` must be (or link to).
        created_at: a backfill: the aware datetime the record is stored
            with, instead of the time it is built. None stamps it.
        updated_at: with ``created_at`` only; defaults to it.

    Raises:
        InvalidInput: a field is refused (``InvalidPayload`` for the payload;
            a naive or out-of-range time, or ``updated_at`` alone or before
            ``created_at``).
    """
    client_id, collection = client_ref(llm_client, model=client_model, write=True)
    key = check_session_key(session_key)
    check_bool("is_aggregation", is_aggregation)
    payload, needs_escape = normalize_payload(request)
    stored = encode_payload(payload) if needs_escape else payload
    if created_at is None and updated_at is None:
        return ValidatedRequest(client_id, collection, payload, stored, key, is_aggregation)
    created, updated = check_timestamps(created_at, updated_at)
    return ValidatedRequest(
        client_id, collection, payload, stored, key, is_aggregation, created, updated
    )


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
    }
