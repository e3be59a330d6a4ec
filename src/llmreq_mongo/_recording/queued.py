"""A record waiting in the recorder's queue: its stored document, encoded once.

``record()`` encodes each document to BSON as it accepts it
(:class:`QueuedRecord`), and the queue holds those bytes until the batch is
sent; ``insert_many`` sends them as they are, without encoding them again.
That is one immutable snapshot: a caller changing the payload after
``record()`` cannot change what is stored. It is also far lighter to hold
than a tree of dicts (one object per record for the garbage collector to
visit, not one per dict and list in the payload), and its size in bytes is
known, which ``max_queue_bytes`` bounds.

The writer reads a queued record's ``_id`` and ``llm_client_id`` from
attributes kept beside the bytes. Everything else that wants the document
(``on_error``, ``on_drop``, the spill file) gets :func:`plain` of it: the
document decoded to exactly the values it was built from (plain dicts and
lists, ``int`` not ``bson.Int64``, aware UTC datetimes, the client link as a
``DBRef``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions, TypeDecoder, TypeRegistry
from bson.int64 import Int64

from llmreq_mongo._documents import EncodedRecord, ValidatedRequest, encode_request

__all__ = ["Doc", "QueuedRecord", "plain", "queued_record", "size_of"]

#: A record on its way to MongoDB: queued (a :class:`QueuedRecord`) or
#: replayed from the spill file (a dict).
Doc = Mapping[str, Any]


class _PlainInt(TypeDecoder):
    """A BSON 64-bit integer decodes to ``int``, the type it was recorded as."""

    bson_type = Int64

    def transform_bson(self, value: Any) -> Any:
        return int(value)


_PLAIN_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, tzinfo=dt.timezone.utc, type_registry=TypeRegistry([_PlainInt()])
)


def queued_record(checked: ValidatedRequest, record_id: ObjectId, now: dt.datetime) -> QueuedRecord:
    """The checked record ``checked``, encoded and ready to queue, stamped ``now``."""
    encoded = encode_request(checked, record_id=record_id, now=now)
    return QueuedRecord(encoded, record_id, checked.client_id)


class QueuedRecord(EncodedRecord):
    """One accepted record: its BSON bytes, its id, its client's id and its size.

    A read-only mapping (``RawBSONDocument``): ``record["_id"]`` and
    ``record["llm_client_id"]`` are read from the attributes, any other key
    decodes the document (as :func:`plain` does) the first time.
    """

    __slots__ = ()

    @staticmethod
    def _inflate_bson(bson_bytes: bytes | memoryview, codec_options: Any) -> Mapping[str, Any]:
        del codec_options  # always the plain values
        decoded: dict[str, Any] = bson.decode(bson_bytes, codec_options=_PLAIN_OPTIONS)
        return decoded

    def document(self) -> dict[str, Any]:
        """The stored document as a new dict of plain values."""
        decoded: dict[str, Any] = bson.decode(self.raw, codec_options=_PLAIN_OPTIONS)
        return decoded


def plain(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` as a dict: a queued record decoded, a dict (a replayed record) as it is."""
    if isinstance(doc, QueuedRecord):
        return doc.document()
    return doc if isinstance(doc, dict) else dict(doc)


def size_of(docs: Iterable[Doc]) -> int:
    """The encoded bytes of the queued records among ``docs``."""
    return sum(doc.size for doc in docs if isinstance(doc, QueuedRecord))
