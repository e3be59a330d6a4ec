"""The hot write path of request records: check the fields once, build the stored document.

``objects.create`` and the recorder both go through here, so a record is
refused with the same error and stored as the same document either way. The
document is exactly the one Beanie itself would store for the same values,
built without Beanie's per-document encoding.

:func:`encode_request` gives that document as BSON bytes: its fields
framed around one call of the driver's C encoder, for the request and the
response. The client's link and id, the same for every record of a client,
are framed once and kept (a ``DBRef`` costs the encoder a Python call per
record), and :func:`new_record_id` makes ids without ``ObjectId()``'s
per-id lock and packing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import struct
import time
from collections.abc import Mapping
from typing import Any

import bson
from bson import DBRef, ObjectId
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument

from llmreq_mongo._capture import (
    LLMResponse,
    has_plain_body,
    response_document,
    response_from,
    without_body,
)
from llmreq_mongo._checks import check_bool, check_session_key, check_timestamps, client_ref
from llmreq_mongo._queries import (
    MAX_PAYLOAD_BYTES,
    NOT_PLAIN,
    checked_payload,
    encode_payload,
    is_plain,
    normalize_payload,
    plain_copy,
    vouched,
)
from llmreq_mongo.errors import PayloadTooLarge

# What the C encoder raises for a value it refuses (with check_keys, a key
# that must be escaped too): a payload it refuses gets the full check.
_ENCODER_REFUSALS = (bson.errors.BSONError, OverflowError, ValueError)

__all__ = [
    "EncodedRecord",
    "ValidatedRequest",
    "checked_response",
    "encode_request",
    "new_record_id",
    "payload_and_stored_form",
    "request_document",
    "validate_request",
]


class ValidatedRequest:
    """The checked values of one request record, ready to be stored."""

    __slots__ = (
        "client_id",
        "collection",
        "created_at",
        "fitted",
        "is_aggregation",
        "payload",
        "response",
        "session_key",
        "stored",
        "stored_response",
        "unverified",
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
        *,
        unverified: bool = False,
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
        #: Whether the payload and the response body passed only
        #: :func:`~llmreq_mongo._queries.is_plain` (or the payload
        #: :func:`~llmreq_mongo._queries.plain_copy`, which made it): they are
        #: kept as they are, and :func:`encode_request` completes their check
        #: with the encoder's (or, should it refuse them, with the full one).
        self.unverified = unverified
        #: What came back, or None; and its stored form (the body escaped).
        self.response = response
        if response is None:
            self.stored_response = None
        elif unverified:
            self.stored_response = response_document(response, response.body)
        else:
            self.stored_response = response_document(response)
        #: Whether the response body is known to fit beside the request.
        self.fitted = response is None or response.body is None

    def respond(self, response: LLMResponse) -> None:
        """Set what came back, for a record whose response comes after its check.

        ``response`` is checked already (:func:`checked_response`); whether
        it fits beside the request is checked when the record is encoded.
        """
        self.response = response
        self.stored_response = response_document(response)
        self.fitted = response.body is None


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
    fit: bool = True,
    copy: bool = True,
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
        fit: make that check here. :func:`encode_request` makes it when it
            was not made, for the price of a length: the write paths that
            encode (``objects.create``, the recorder) pass False.
        copy: ``payload`` is a fresh copy of ``request``. False, for a
            record encoded before anything else reads it (the recorder),
            skips the copy when the payload is plain JSON with no key to
            escape: ``payload`` is then ``request`` itself. With ``fit``
            False, a payload (and an ``LLMResponse``'s body) that
            :func:`~llmreq_mongo._queries.is_plain` passes is only checked
            that far here, and :func:`encode_request` completes the check,
            with the same errors, as it encodes the record; with ``copy``
            too, the payload is checked by its copy
            (:func:`~llmreq_mongo._queries.plain_copy`), and ``payload`` is
            that copy.

    Raises:
        InvalidInput: a field is refused (``InvalidPayload`` for the payload
            or the response body; a naive or out-of-range time, or
            ``updated_at`` alone or before ``created_at``).
    """
    client_id, collection = client_ref(llm_client, model=client_model, write=True)
    key = check_session_key(session_key)
    check_bool("is_aggregation", is_aggregation)
    plain: Any = NOT_PLAIN
    if not fit:
        if copy:
            plain = plain_copy(request)
        elif vouched(request) or is_plain(request):
            plain = request
        if plain is not NOT_PLAIN and not (
            response is None
            or (
                type(response) is LLMResponse
                and (has_plain_body(response) or is_plain(response.body))
            )
        ):
            plain = NOT_PLAIN
    unverified = plain is not NOT_PLAIN
    if unverified:
        payload = stored = plain
    else:
        payload, stored = payload_and_stored_form(request, copy=copy)
    answer = None if response is None else _response(response)
    created = updated = None
    if created_at is not None or updated_at is not None:
        created, updated = check_timestamps(created_at, updated_at)
    checked = ValidatedRequest(
        client_id,
        collection,
        payload,
        stored,
        key,
        is_aggregation,
        created,
        updated,
        answer,
        unverified=unverified,
    )
    if fit and not checked.fitted:
        _fit(checked)
    return checked


def payload_and_stored_form(request: Any, *, copy: bool) -> tuple[Any, Any]:
    """``request`` checked in full (a fresh copy with ``copy``), and its stored form.

    Raises:
        InvalidPayload: the payload is refused.
    """
    payload, needs_escape = normalize_payload(request) if copy else checked_payload(request)
    return payload, encode_payload(payload) if needs_escape else payload


def checked_response(value: Any) -> LLMResponse:
    """``value`` (an ``LLMResponse`` or a dict of its fields) checked as ``validate_request`` does.

    A body too large for any document is dropped and ``truncated`` set.

    Raises:
        InvalidInput: a field is refused (``InvalidPayload`` for the body).
    """
    return _response(value)


def _response(value: Any) -> LLMResponse:
    """``value`` as a response; a body too large for any document is dropped, not refused."""
    try:
        return response_from(value)
    except PayloadTooLarge:
        if not isinstance(value, Mapping):
            raise
        return response_from({**value, "body": None, "truncated": True})


def _fit(checked: ValidatedRequest) -> None:
    """Drop the response body if request and body together would overflow a document."""
    checked.fitted = True
    if checked.response is None or checked.stored_response is None:
        return
    # Each part was checked alone; together they may still be too large.
    both = {"request": checked.stored, "body": checked.stored_response["body"]}
    if len(bson.encode(both)) > MAX_PAYLOAD_BYTES:
        checked.response = without_body(checked.response)
        checked.stored_response = response_document(checked.response)


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


# An ObjectId is 4 bytes of seconds, 5 random bytes unique to the process and
# a 3-byte counter. Here the counter starts at 0 and only ever grows (mod
# 2**24), so the ids of one process are in the order they were made unless
# 16.7 million are made in one second; the random bytes are drawn again in a
# forked child, which must not make its parent's ids.
_ID_COUNTER = itertools.count()
_ID_RANDOM = os.urandom(5)
_ID_PREFIX: tuple[int, bytes] = (-1, b"")
_SECONDS = struct.Struct(">I")


def _after_fork() -> None:
    global _ID_RANDOM, _ID_PREFIX
    _ID_RANDOM, _ID_PREFIX = os.urandom(5), (-1, b"")


os.register_at_fork(after_in_child=_after_fork)


def new_record_id(kind: type[ObjectId] = ObjectId) -> ObjectId:
    """A new ObjectId, as ``ObjectId()`` makes one, for less than a quarter of its cost.

    ``kind`` is the class made: ``ObjectId`` or a subclass (``PydanticObjectId``).
    """
    global _ID_PREFIX
    seconds = int(time.time())
    second, prefix = _ID_PREFIX
    if second != seconds:
        prefix = _SECONDS.pack(seconds & 0xFFFFFFFF) + _ID_RANDOM
        _ID_PREFIX = (seconds, prefix)  # one assignment: threads see either tuple whole
    return kind(prefix + (next(_ID_COUNTER) & 0xFFFFFF).to_bytes(3, "big"))


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


#: Whether this pymongo's RawBSONDocument keeps its state in the three slots
#: that EncodedRecord sets directly (if not, its own __init__ runs).
_RAW_SLOTS = set(getattr(RawBSONDocument, "__slots__", ())) == {
    "__raw",
    "__inflated_doc",
    "__codec_options",
}


class EncodedRecord(RawBSONDocument):
    """A record encoded for ``insert_one`` or ``insert_many``: its bytes, as the driver sends them.

    The driver reads each inserted document's ``_id`` back, and a plain
    ``RawBSONDocument`` decodes the whole record for that. Here ``_id`` and
    ``llm_client_id`` (which the recorder reads too) come from attributes
    kept beside the bytes; any other key decodes the document, as usual.
    """

    __slots__ = ("client_id", "record_id", "size")

    def __init__(self, encoded: bytes, record_id: ObjectId, client_id: ObjectId) -> None:
        if _RAW_SLOTS:
            # RawBSONDocument's own three slots, set as its __init__ sets them,
            # without checking the length of bytes encoded here: that check
            # is half of what queueing a record costs beyond its encoding.
            self._RawBSONDocument__raw = encoded
            self._RawBSONDocument__inflated_doc = None
            self._RawBSONDocument__codec_options = DEFAULT_RAW_BSON_OPTIONS
        else:  # a driver that keeps them otherwise: its own __init__
            super().__init__(encoded)
        self.record_id = record_id
        self.client_id = client_id
        self.size = len(encoded)

    def __getitem__(self, key: str) -> Any:
        if key == "_id":
            return self.record_id
        if key == "llm_client_id":
            return self.client_id
        return super().__getitem__(key)


def encode_request(checked: ValidatedRequest, *, record_id: ObjectId, now: dt.datetime) -> bytes:
    """:func:`request_document` as BSON: the very bytes ``bson.encode`` gives for it.

    One call of the C encoder, the client link copied in already encoded.
    When ``validate_request`` left the response unfitted (``fit=False``),
    the check is made here: a document no longer than ``MAX_PAYLOAD_BYTES``
    holds request and body with room to spare, so only a longer one needs
    it, and is encoded again if the body goes.

    A record left ``unverified`` by ``validate_request`` is encoded with the
    encoder's key checks on (:mod:`llmreq_mongo._queries.plain`); anything
    the encoder refuses, and a record over the payload limit, is checked in
    full and encoded again, so the bytes, and any error, are those of the
    full check.

    Raises:
        InvalidPayload: an unverified payload is refused by the full check.
    """
    if checked.unverified:
        checked.unverified = False
        try:
            encoded = _encode(checked, record_id, now, check_keys=True)
        except _ENCODER_REFUSALS:
            pass  # a key to escape, or a value to refuse: the full check says which
        else:
            if len(encoded) <= MAX_PAYLOAD_BYTES:  # so request and body both fit
                checked.fitted = True
                return encoded
        _check_fully(checked)
    encoded = _encode(checked, record_id, now)
    if not checked.fitted and len(encoded) > MAX_PAYLOAD_BYTES:
        _fit(checked)
        if checked.stored_response is not None and checked.stored_response["body"] is None:
            encoded = _encode(checked, record_id, now)
    checked.fitted = True
    return encoded


def _check_fully(checked: ValidatedRequest) -> None:
    """The check :func:`validate_request` left to the encoder, made in full.

    Raises:
        InvalidPayload: the payload is refused, as ``validate_request`` would.
    """
    checked.payload, checked.stored = payload_and_stored_form(checked.payload, copy=False)
    if checked.response is not None:
        checked.stored_response = response_document(checked.response)


def _encode(
    checked: ValidatedRequest, record_id: ObjectId, now: dt.datetime, *, check_keys: bool = False
) -> bytes:
    """The record's BSON: the fixed fields framed here, the two payloads by the C encoder.

    The bytes are those ``bson.encode`` gives for the whole document (the
    tests compare them), for less: the client's two fields are the same
    bytes for every record of a client, both times are those of the record
    before when they are the same millisecond, and the encoder is called
    once, for the response and the request together, as one document whose
    two elements are then cut apart (a top-level "_id" in the request, which
    the encoder would move first, stays in its place in a nested document).
    """
    response = checked.stored_response
    if response is None:
        pair = bson.encode({"request": checked.stored}, check_keys)
        request, answer = pair[4:-1], b"\x0aresponse\x00"
    else:
        pair = bson.encode({"response": response, "request": checked.stored}, check_keys)
        # The response's element: its type byte and name (10 bytes), then the
        # document, which starts with its length.
        cut = 14 + _INT32.unpack_from(pair, 14)[0]
        request, answer = pair[cut:-1], pair[4:cut]
    key = checked.session_key
    if key is None:
        session = b"\x0asession_key\x00"
    else:
        text = key.encode()  # a checked key is always UTF-8
        session = b"\x02session_key\x00" + _INT32.pack(len(text) + 1) + text + b"\x00"
    elements = b"".join(
        (
            b"\x07_id\x00",
            record_id.binary,
            _times(checked.created_at or now, checked.updated_at or now),
            _client_fields(checked.collection, checked.client_id),
            request,
            session,
            b"\x08is_aggregation\x00\x01"
            if checked.is_aggregation
            else b"\x08is_aggregation\x00\x00",
            answer,
        )
    )
    # A document: its length (these 4 bytes and the closing NUL included), its elements.
    return _INT32.pack(len(elements) + 5) + elements + b"\x00"


_INT32 = struct.Struct("<i")
_INT64 = struct.Struct("<q")
_MILLISECOND = dt.timedelta(milliseconds=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

#: The client fields of the records of each client, framed (a BSON element is
#: its type byte, its name and its value): the link and the id.
_CLIENT_FIELDS: dict[tuple[str, ObjectId], bytes] = {}

#: The last times framed, and their bytes: a burst of records within one
#: millisecond shares its datetime (``now_ms``), and so these bytes.
_LAST_TIMES: tuple[dt.datetime | None, dt.datetime | None, bytes] = (None, None, b"")


def _client_fields(collection: str, client_id: ObjectId) -> bytes:
    key = (collection, client_id)
    fields = _CLIENT_FIELDS.get(key)
    if fields is None:
        if len(_CLIENT_FIELDS) >= _CLIENT_REFS_MAX:
            _CLIENT_FIELDS.clear()
        # DBRef.as_doc() is what the encoder itself would write for the link.
        link = bson.encode(_client_dbref(collection, client_id).as_doc())
        fields = b"\x03llm_client\x00" + link + b"\x07llm_client_id\x00" + client_id.binary
        _CLIENT_FIELDS[key] = fields
    return fields


def _times(created: dt.datetime, updated: dt.datetime) -> bytes:
    """``created_at`` and ``updated_at`` framed: BSON UTC datetimes, milliseconds since 1970."""
    global _LAST_TIMES
    last_created, last_updated, framed = _LAST_TIMES
    if created is not last_created or updated is not last_updated:
        framed = (
            b"\x09created_at\x00"
            + _INT64.pack((created - _EPOCH) // _MILLISECOND)
            + b"\x09updated_at\x00"
            + _INT64.pack((updated - _EPOCH) // _MILLISECOND)
        )
        _LAST_TIMES = (created, updated, framed)  # one assignment: threads see it whole
    return framed
