"""Keyset pagination: page cursors and the query that continues after one.

A cursor is an opaque URL-safe string: unpadded base64url of one version
byte, a 16-byte check, and a compact JSON list of the last item's sort-key
values, each tagged with its type. The check is a SHA-256 over a fingerprint
of the query and sort and over the values, so a cursor that was altered,
truncated, or made by another query is refused with ``InvalidCursor``.

The check is an integrity check, not a secret: anyone who knows the query can
build a valid cursor. That is harmless, because a cursor only chooses where a
page starts: its values are decoded into typed values (``datetime``,
``ObjectId``, ``str``, numbers, booleans, None) and are only ever used as
literals inside ``$gt``/``$lt``/``$eq``, never as operators or field names.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bson import ObjectId, json_util

from llmreq_mongo._checks import a_type
from llmreq_mongo.errors import InvalidCursor, InvalidInput

__all__ = [
    "MAX_PAGE_SIZE",
    "Page",
    "cursor_values",
    "decode_cursor",
    "encode_cursor",
    "fingerprint",
    "keyset_pipeline",
    "with_tiebreak",
]

T = TypeVar("T")
Sort = Sequence[tuple[str, int]]

#: The largest page ``QuerySet.page`` returns.
MAX_PAGE_SIZE = 1000

_VERSION = b"\x01"
_CHECK_BYTES = 16
_MAX_CURSOR_CHARS = 8192
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_INT64 = 2**63


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paginated query.

    Attributes:
        items: the documents of this page, in the query's order.
        next_cursor: pass it as ``after=`` to get the next page; None on the
            last page.
    """

    items: list[T]
    next_cursor: str | None


def with_tiebreak(sort: Sort) -> list[tuple[str, int]]:
    """``sort`` with ``_id`` as the final key (same direction as the last key).

    An empty sort pages by ``_id`` ascending. Repeated fields keep their first
    direction.
    """
    out: list[tuple[str, int]] = []
    for path, direction in sort:
        if all(path != seen for seen, _ in out):
            out.append((path, direction))
    if all(path != "_id" for path, _ in out):
        out.append(("_id", out[-1][1] if out else 1))
    return out


def fingerprint(collection: str, query: Mapping[str, Any], sort: Sort) -> bytes:
    """A digest of what a cursor belongs to: the collection, filter and sort."""
    text = json_util.dumps(
        {"c": collection, "q": query, "s": [list(key) for key in sort]},
        json_options=json_util.CANONICAL_JSON_OPTIONS,
    )
    return hashlib.sha256(text.encode("utf-8")).digest()


def _tag(path: str, value: Any) -> list[Any]:
    if value is None:
        return ["n"]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", value]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
        return ["d", (aware - _EPOCH) // dt.timedelta(milliseconds=1)]
    if isinstance(value, ObjectId):
        return ["o", str(value)]
    raise InvalidInput(
        f"cannot page after a document whose {path!r} holds {a_type(value)}; "
        "order by fields holding strings, numbers, booleans, datetimes or ids"
    )


def _untag(item: Any) -> Any:
    """Decode one tagged value, refusing anything but the exact expected shapes."""
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise ValueError("not a tagged value")
    tag, rest = item[0], item[1:]
    if tag == "n" and not rest:
        return None
    if len(rest) != 1:
        raise ValueError("wrong arity")
    value = rest[0]
    if tag == "b" and isinstance(value, bool):
        return value
    if tag == "i" and type(value) is int and -_INT64 <= value < _INT64:
        return value
    if tag == "f" and type(value) is float and math.isfinite(value):
        return value
    if tag == "s" and isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
        return value
    if tag == "d" and type(value) is int:
        return _EPOCH + dt.timedelta(milliseconds=value)  # OverflowError if absurd
    if tag == "o" and isinstance(value, str) and re.fullmatch(r"[0-9a-f]{24}", value):
        return ObjectId(value)
    raise ValueError(f"bad value for tag {tag!r}")


def cursor_values(raw: Mapping[str, Any], sort: Sort) -> list[Any]:
    """The sort-key values of a raw document, following dotted paths."""
    values: list[Any] = []
    for path, _ in sort:
        node: Any = raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        values.append(node)
    return values


def _check(print_: bytes, body: bytes) -> bytes:
    return hashlib.sha256(print_ + b"\x00" + body).digest()[:_CHECK_BYTES]


def encode_cursor(print_: bytes, sort: Sort, values: Sequence[Any]) -> str:
    """The opaque cursor for ``values`` under the query fingerprint ``print_``."""
    tagged = [_tag(path, v) for (path, _), v in zip(sort, values, strict=True)]
    body = json.dumps(tagged, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    token = base64.urlsafe_b64encode(_VERSION + _check(print_, body) + body)
    return token.decode("ascii").rstrip("=")


def _invalid(why: str) -> InvalidCursor:
    return InvalidCursor(
        f"the page cursor is not valid ({why}); pass the next_cursor of a page of "
        "this same query, unchanged, or None for the first page"
    )


def decode_cursor(token: Any, print_: bytes, sort: Sort) -> list[Any]:
    """The typed sort-key values a cursor carries.

    Raises:
        InvalidCursor: not a string, not canonical base64url, altered, or
            made by another query or sort.
    """
    if not isinstance(token, str):
        raise _invalid(f"a cursor is a string, got {a_type(token)}")
    if not token or len(token) > _MAX_CURSOR_CHARS or not _ALPHABET.fullmatch(token):
        raise _invalid("not a base64url string")
    if len(token) % 4 == 1:
        raise _invalid("truncated")
    padded = token + "=" * (-len(token) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("not base64url") from None
    # Python's decoder ignores stray padding bits: only the canonical spelling passes.
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != token:
        raise _invalid("not in canonical form")
    head, check, body = raw[:1], raw[1 : 1 + _CHECK_BYTES], raw[1 + _CHECK_BYTES :]
    if head != _VERSION or len(check) != _CHECK_BYTES:
        raise _invalid("unknown version")
    if check != _check(print_, body):
        raise _invalid("it was altered, or it belongs to another query or order")
    try:
        items = json.loads(body.decode("utf-8"))
        if not isinstance(items, list) or len(items) != len(sort):
            raise ValueError("wrong length")
        return [_untag(item) for item in items]
    except (ValueError, OverflowError, UnicodeDecodeError):
        raise _invalid("its values do not decode") from None


def _after(path: str, direction: int, value: Any, nullable: bool) -> dict[str, Any] | None:
    """The condition "strictly after ``value``" on one key, or None if nothing is."""
    # MongoDB sorts null (and missing) before every other value.
    if direction == 1:
        if value is None:
            return {path: {"$ne": None}}
        return {path: {"$gt": value}}
    if value is None:
        return None
    if nullable:
        return {"$or": [{path: {"$lt": value}}, {path: {"$eq": None}}]}
    return {path: {"$lt": value}}


def _successor(value: Any) -> Any:
    """The smallest value of the same BSON type above ``value``, or None if unknown.

    ``x < _successor(v)`` is then exactly ``x <= v`` for values of that type.
    """
    if isinstance(value, dt.datetime):
        if value >= dt.datetime.max.replace(tzinfo=value.tzinfo, microsecond=999000):
            return None  # the last millisecond Python represents has no successor
        return value + dt.timedelta(milliseconds=1)  # BSON datetimes are whole milliseconds
    if isinstance(value, str):
        return value + "\x00"  # the first string after ``value`` in binary order
    if isinstance(value, ObjectId):
        number = int.from_bytes(value.binary, "big") + 1
        return ObjectId(number.to_bytes(12, "big")) if number < 2**96 else None
    return None


def _lead_bound(direction: int, value: Any, nullable: bool) -> dict[str, Any] | None:
    """A range on the leading sort key that an index can bound, or None."""
    if value is None:
        return None
    if direction == 1:
        return {"$gte": value}
    if nullable:
        return None  # nulls sort after every value in descending order
    # ``$lt`` the successor rather than ``$lte``: the embedded engine drops the
    # values equal to a ``$lte`` bound when the range key is not the last key
    # of the compound index it scans (docs/embedded-engine.md, §13); on MongoDB the two are equal.
    above = _successor(value)
    return None if above is None else {"$lt": above}


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    if base.keys() & extra.keys():
        return {"$and": [dict(base), dict(extra)]}
    return {**base, **extra}


def keyset_pipeline(
    query: Mapping[str, Any],
    sort: Sort,
    after: Sequence[Any] | None,
    *,
    limit: int,
    nullable: frozenset[str],
) -> list[dict[str, Any]]:
    """The aggregation that returns the ``limit`` documents after ``after``.

    The first ``$match`` is the query plus a range on the leading sort key
    (what an index bounds); the second holds the exact keyset condition.
    MongoDB merges the two, and pushes the sort and limit into the index
    scan; the embedded engine uses the index for the first one only.
    """
    pipeline: list[dict[str, Any]] = []
    first = dict(query)
    if after is not None:
        lead, direction = sort[0]
        bound = _lead_bound(direction, after[0], lead in nullable)
        if bound is not None:
            first = _merge(first, {lead: bound})
        branches: list[dict[str, Any]] = []
        for i, (path, direction) in enumerate(sort):
            strict = _after(path, direction, after[i], path in nullable)
            if strict is not None:
                branch: dict[str, Any] = {}
                for (prev, _), prev_value in zip(sort[:i], after[:i], strict=True):
                    branch = _merge(branch, {prev: {"$eq": prev_value}})
                branches.append(_merge(branch, strict))
        pipeline.append({"$match": first})
        pipeline.append({"$match": {"$or": branches} if branches else {"_id": {"$in": []}}})
    else:
        pipeline.append({"$match": first})
    pipeline.append({"$sort": dict(sort)})
    pipeline.append({"$limit": limit})
    return pipeline
