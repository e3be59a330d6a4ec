"""JSON payloads: validation, normalisation, and the escaping of awkward keys.

A request payload is stored as a native BSON value so that it can be queried
(``request__model="gpt-4o"``). Two kinds of JSON key cannot be stored as they
are: keys starting with ``$`` (JSON Schema's ``$schema``, ``$defs``, ``$ref``;
a sub-document holding both ``$ref`` and ``$id`` would even come back from
PyMongo as a ``DBRef``) and keys containing ``.`` (MongoDB reads them as
paths). Such keys are stored percent-escaped: ``%`` becomes ``%25``, ``.``
becomes ``%2E`` and a leading ``$`` becomes ``%24``. Every other key is stored
unchanged, and decoding reverses the escaping exactly.

Normalisation follows the reference's JSON encoder: ``datetime``/``date``
become ISO 8601 strings, ``Decimal`` and ``UUID`` become strings, tuples and
sets become lists. Anything else that is not JSON is refused with
:class:`~llmreq_mongo.errors.InvalidPayload`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bson import Int64

from llmreq_mongo._checks import INT64_MAX, INT64_MIN, a_type
from llmreq_mongo.errors import InvalidPayload, PayloadTooLarge

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_NESTING",
    "MAX_PAYLOAD_BYTES",
    "checked_payload",
    "decode_payload",
    "encode_payload",
    "escape_key",
    "normalize_payload",
    "stored_payload",
]

#: MongoDB's ``maxBsonObjectSize``.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: What is left for the payload once the rest of a record is accounted for
#: (ids, timestamps, a session key of at most 255 characters, field names).
MAX_PAYLOAD_BYTES = MAX_DOCUMENT_BYTES - 2048

#: How deep a payload may nest: mongod stores documents at most 180 levels
#: deep, counting the document itself, and the record holding the payload is
#: one of them.
MAX_NESTING = 179
_UNESCAPE = re.compile(r"%(25|2E|24)")
_UNESCAPED = {"25": "%", "2E": ".", "24": "$"}


def escape_key(key: str) -> str:
    """Return ``key`` as it is stored in MongoDB (see the module docstring)."""
    if "%" in key:
        key = key.replace("%", "%25")
    if "." in key:
        key = key.replace(".", "%2E")
    if key.startswith("$"):
        key = "%24" + key[1:]
    return key


def _needs_escape(key: str) -> bool:
    return "%" in key or "." in key or key.startswith("$")


def _unescape_key(key: str) -> str:
    return _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], key) if "%" in key else key


def _string_size(value: str, path: str, what: str) -> int:
    if value.isascii():
        return len(value)
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidPayload(
            f"{what} is not valid Unicode (a lone surrogate at position {exc.start}); "
            "send text that encodes to UTF-8",
            path=path,
        ) from None


class _Normalizer:
    """One pass over a payload: validate, convert, and measure its BSON size."""

    __slots__ = ("escaped", "size")

    def __init__(self) -> None:
        self.size = 0
        self.escaped = False

    def value(self, value: Any, path: str, depth: int) -> Any:
        # The order of the checks follows how common each type is in payloads.
        if isinstance(value, str):
            self.size += _string_size(value, path, "a string") + 5
            # A str subclass (an enum member, say) is stored, and read back, as a str.
            return value if type(value) is str else str.__str__(value)
        if value is None:
            return None
        if isinstance(value, bool):
            self.size += 1
            return value
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise InvalidPayload(
                    f"the integer {value} does not fit in 64 bits, the largest "
                    "integer MongoDB stores; send it as a string",
                    path=path,
                )
            self.size += 8
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidPayload(
                    f"{value!r} is not a JSON number; send null or a string instead",
                    path=path,
                )
            self.size += 8
            return float(value)
        if isinstance(value, Mapping):
            return self.mapping(value, path, depth + 1)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self.sequence(value, path, depth + 1)
        if isinstance(value, dt.datetime):
            return self.value(value.isoformat(), path, depth)
        if isinstance(value, (dt.date, dt.time)):
            return self.value(value.isoformat(), path, depth)
        if isinstance(value, (Decimal, uuid.UUID)):
            return self.value(str(value), path, depth)
        raise InvalidPayload(
            f"a value of type {type(value).__name__} is not JSON; convert it to a "
            "string, number, boolean, null, list or object first",
            path=path,
        )

    def _check_depth(self, path: str, depth: int) -> None:
        if depth > MAX_NESTING:
            raise InvalidPayload(
                f"the payload nests deeper than {MAX_NESTING} levels, more than "
                "MongoDB stores; flatten it",
                path=path,
            )

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
        self._check_depth(path, depth)
        out: dict[str, Any] = {}
        self.size += 5
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPayload(
                    f"the object key {key!r} is {a_type(key)}; JSON object keys must be strings",
                    path=path,
                )
            child = f"{path}[{key!r}]"
            if "\x00" in key:
                raise InvalidPayload(
                    "an object key contains a NUL character, which BSON cannot store",
                    path=child,
                )
            if _needs_escape(key):
                self.escaped = True
                self.size += _string_size(escape_key(key), child, "an object key") + 2
            else:
                self.size += _string_size(key, child, "an object key") + 2
            out[key if type(key) is str else str.__str__(key)] = self.value(item, child, depth)
        return out

    def sequence(self, value: Any, path: str, depth: int) -> list[Any]:
        self._check_depth(path, depth)
        self.size += 5
        out: list[Any] = []
        for index, item in enumerate(value):
            self.size += len(str(index)) + 2
            out.append(self.value(item, f"{path}[{index}]", depth))
        return out


class _NotPlainJSON(Exception):
    """Raised by the fast walk on anything it leaves to :class:`_Normalizer`."""


def _utf8_size(value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _NotPlainJSON from None


# `_fast_dict` and `_fast_list` repeat the same per-value branch on purpose:
# this is the hot path of every write, and a shared helper would add a Python
# call per value (measured: about 5% of the 5 µs walk of a chat request).


def _fast_dict(value: dict[Any, Any], depth: int, sizes: list[int], escaped: list[bool]) -> Any:
    if depth > MAX_NESTING:
        raise _NotPlainJSON
    out = {}
    size = 5
    for key, item in value.items():
        if type(key) is not str or "\x00" in key:
            raise _NotPlainJSON
        if "%" in key or "." in key or key.startswith("$"):
            escaped[0] = True
            key_size = _utf8_size(escape_key(key))
        else:
            key_size = len(key) if key.isascii() else _utf8_size(key)
        size += key_size + 2
        kind = type(item)
        if kind is str:
            size += (len(item) if item.isascii() else _utf8_size(item)) + 5
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise _NotPlainJSON
            size += 8
        elif kind is float:
            if not math.isfinite(item):
                raise _NotPlainJSON
            size += 8
        elif kind is bool:
            size += 1
        elif item is None:
            pass
        elif kind is dict:
            item = _fast_dict(item, depth + 1, sizes, escaped)
        elif kind is list:
            item = _fast_list(item, depth + 1, sizes, escaped)
        else:
            raise _NotPlainJSON
        out[key] = item
    sizes[0] += size
    return out


def _fast_list(value: list[Any], depth: int, sizes: list[int], escaped: list[bool]) -> Any:
    if depth > MAX_NESTING:
        raise _NotPlainJSON
    out = []
    size = 5
    for index, item in enumerate(value):
        size += (1 if index < 10 else len(str(index))) + 2
        kind = type(item)
        if kind is str:
            size += (len(item) if item.isascii() else _utf8_size(item)) + 5
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise _NotPlainJSON
            size += 8
        elif kind is float:
            if not math.isfinite(item):
                raise _NotPlainJSON
            size += 8
        elif kind is bool:
            size += 1
        elif item is None:
            pass
        elif kind is dict:
            item = _fast_dict(item, depth + 1, sizes, escaped)
        elif kind is list:
            item = _fast_list(item, depth + 1, sizes, escaped)
        else:
            raise _NotPlainJSON
        out.append(item)
    sizes[0] += size
    return out


# The same walk again, looking only: for a payload encoded at once, where
# the copy the walks above make is not needed (the encoding is the snapshot).


def _check_dict(value: dict[Any, Any], depth: int, sizes: list[int]) -> bool:
    if depth > MAX_NESTING:
        raise _NotPlainJSON
    escaped = False
    size = 5
    for key, item in value.items():
        if type(key) is not str or "\x00" in key:
            raise _NotPlainJSON
        if "%" in key or "." in key or key.startswith("$"):
            escaped = True
            key_size = _utf8_size(escape_key(key))
        else:
            key_size = len(key) if key.isascii() else _utf8_size(key)
        size += key_size + 2
        kind = type(item)
        if kind is str:
            size += (len(item) if item.isascii() else _utf8_size(item)) + 5
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise _NotPlainJSON
            size += 8
        elif kind is float:
            if not math.isfinite(item):
                raise _NotPlainJSON
            size += 8
        elif kind is bool:
            size += 1
        elif item is None:
            pass
        elif kind is dict:
            escaped = _check_dict(item, depth + 1, sizes) or escaped
        elif kind is list:
            escaped = _check_list(item, depth + 1, sizes) or escaped
        else:
            raise _NotPlainJSON
    sizes[0] += size
    return escaped


def _check_list(value: list[Any], depth: int, sizes: list[int]) -> bool:
    if depth > MAX_NESTING:
        raise _NotPlainJSON
    escaped = False
    size = 5
    for index, item in enumerate(value):
        size += (1 if index < 10 else len(str(index))) + 2
        kind = type(item)
        if kind is str:
            size += (len(item) if item.isascii() else _utf8_size(item)) + 5
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise _NotPlainJSON
            size += 8
        elif kind is float:
            if not math.isfinite(item):
                raise _NotPlainJSON
            size += 8
        elif kind is bool:
            size += 1
        elif item is None:
            pass
        elif kind is dict:
            escaped = _check_dict(item, depth + 1, sizes) or escaped
        elif kind is list:
            escaped = _check_list(item, depth + 1, sizes) or escaped
        else:
            raise _NotPlainJSON
    sizes[0] += size
    return escaped


def _fast_check(value: Any) -> bool:
    """:func:`_fast_normalize` without the copy: whether a key needs escaping.

    Raises :class:`_NotPlainJSON` exactly where the fast walk does.
    """
    kind = type(value)
    if kind is dict or kind is list:
        sizes = [0]
        escaped = _check_dict(value, 1, sizes) if kind is dict else _check_list(value, 1, sizes)
        if sizes[0] > MAX_PAYLOAD_BYTES:
            raise _NotPlainJSON
        return escaped
    if value is None:
        return False
    raise _NotPlainJSON


def checked_payload(value: Any) -> tuple[Any, bool]:
    """:func:`normalize_payload` for a payload encoded before anything else reads it.

    A plain JSON payload (dicts, lists, str, int, float, bool, None) in
    which no key needs escaping is returned itself, not copied: encoding it
    gives the same bytes as encoding the copy, and the encoding is the
    snapshot. Anything else is normalised (and copied) as
    :func:`normalize_payload` does, with the same errors.
    """
    try:
        if not _fast_check(value):
            return value, False
    except _NotPlainJSON:
        pass
    return normalize_payload(value)


def _fast_normalize(value: Any) -> tuple[Any, bool]:
    """The common case, without paths: plain dicts, lists, str, int, float, bool, None.

    It gives exactly what :class:`_Normalizer` gives, or raises
    :class:`_NotPlainJSON` for anything else (other types, and every error,
    which the full walk then reports with its path).
    """
    kind = type(value)
    if kind is dict or kind is list:
        sizes, escaped = [0], [False]
        if kind is dict:
            out = _fast_dict(value, 1, sizes, escaped)
        else:
            out = _fast_list(value, 1, sizes, escaped)
        if sizes[0] > MAX_PAYLOAD_BYTES:
            raise _NotPlainJSON
        return out, escaped[0]
    if value is None:
        return None, False
    raise _NotPlainJSON


def normalize_payload(value: Any) -> tuple[Any, bool]:
    """Validate ``value`` as a payload and return it normalised.

    Returns:
        The normalised payload (a fresh copy: later changes to ``value`` do
        not reach it) and whether any key needs escaping when stored.

    Raises:
        InvalidPayload: ``value`` is not JSON.
        PayloadTooLarge: it would not fit in a MongoDB document.
    """
    # This runs for every record: a lean walk first; the full one, which
    # converts other types and says where a problem is, only when needed.
    try:
        return _fast_normalize(value)
    except _NotPlainJSON:
        pass
    walker = _Normalizer()
    normalised = walker.value(value, "", 0)
    if walker.size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(walker.size, MAX_PAYLOAD_BYTES)
    return normalised, walker.escaped


def _escape(value: Any) -> Any:
    if isinstance(value, dict):
        return {escape_key(k): _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    return value


def encode_payload(value: Any) -> Any:
    """Return a normalised payload in its stored form (awkward keys escaped)."""
    if isinstance(value, (dict, list)):
        return _escape(value)
    return value


def _has_awkward_key(value: Any) -> bool:
    # The same test as _needs_escape, inlined: this walks every key of a body.
    if type(value) is dict:
        for key, item in value.items():
            if "%" in key or "." in key or key.startswith("$"):
                return True
            if (type(item) is dict or type(item) is list) and _has_awkward_key(item):
                return True
    elif type(value) is list:
        for item in value:
            if (type(item) is dict or type(item) is list) and _has_awkward_key(item):
                return True
    return False


def stored_payload(value: Any) -> Any:
    """Like :func:`encode_payload`, but ``value`` itself when no key needs escaping.

    For a payload that is only read from here on (encoded, then dropped):
    most have no awkward key, and a walk that only looks allocates nothing.
    """
    return _escape(value) if _has_awkward_key(value) else value


def decode_payload(value: Any) -> Any:
    """Turn a payload read from MongoDB back into what was recorded.

    The result holds exactly ``dict``, ``list``, ``str``, ``int``, ``float``,
    ``bool`` and None, the types that went in: escaped keys are decoded, and
    the driver's ``bson.Int64`` (what a BSON 64-bit integer decodes to)
    becomes a plain ``int``.
    """
    kind = type(value)
    if kind is dict or isinstance(value, Mapping):
        return _decode_dict(value)
    if kind is list:
        return _decode_list(value)
    if kind is Int64:
        return int(value)
    return value


# The same per-value branch twice, as in the fast walk above: this runs for
# every payload read.


def _decode_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if "%" in key:
            key = _unescape_key(key)
        kind = type(item)
        if kind is dict:
            item = _decode_dict(item)
        elif kind is list:
            item = _decode_list(item)
        elif kind is Int64:
            item = int(item)
        out[key] = item
    return out


def _decode_list(value: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in value:
        kind = type(item)
        if kind is dict:
            item = _decode_dict(item)
        elif kind is list:
            item = _decode_list(item)
        elif kind is Int64:
            item = int(item)
        out.append(item)
    return out
