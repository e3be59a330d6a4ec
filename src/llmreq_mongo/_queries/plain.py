"""The check a payload gets when the BSON encoder finishes it: :func:`is_plain`.

A record that is encoded as soon as it is checked (the recorder's) need not
be walked for what the driver's C encoder refuses by itself. Encoding with
``check_keys=True``, the encoder raises on a key that is not a string, holds
a NUL, starts with ``$`` or contains ``.``; on an int outside 64 bits; on a
string that is not UTF-8; and the length of what it returns is the size.
What it would encode but a payload must not hold is left to this walk:

- a value of any type but exactly ``dict``, ``list``, ``str``, ``int``,
  ``float``, ``bool`` and None (a ``datetime`` or a tuple is encoded
  natively, and ``normalize_payload`` converts it instead);
- a float that is not finite (JSON has no NaN);
- a key holding ``%`` (stored escaped, though the encoder takes it);
- nesting deeper than MongoDB stores.

A payload is written unchanged only when both agree: :func:`is_plain` says
True and the encoder takes the record. On any refusal the record goes
through the full check (:func:`~llmreq_mongo._queries.payload.checked_payload`),
which converts, escapes, or raises the precise error with its path, so the
stored bytes and the errors are exactly those of the full check. The walk
allocates nothing and makes no call for a string, an int or a bool: on a
chat request it costs about a third of the full check's.

A payload the capture decoded itself need not be walked even that far.
orjson makes only those types, with finite floats and 64-bit ints, and
:func:`is_plain_json_text` reads the rest off the JSON text: no ``%``, no
nesting past the limit. The capture then vouches (:func:`vouch`) for the very
object it hands the recorder, and the record asks :func:`vouched` before
it walks.

A payload that must be copied anyway (``objects.create`` returns a document
that holds it) is checked by its copy instead: :func:`plain_copy` has orjson
write it out and read it back, which makes the copy in C, and the copy is
what the walk would pass when the text passes :func:`is_plain_json_text`
and the copy equals the payload (equality is what tells a NaN, a tuple or
an ``Enum`` from what orjson writes for it).
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson

from .payload import MAX_NESTING, MAX_PAYLOAD_BYTES

__all__ = [
    "NOT_PLAIN",
    "forget_vouched",
    "is_plain",
    "is_plain_json_text",
    "plain_copy",
    "vouch",
    "vouched",
]

_isfinite = math.isfinite


class _NotPlain(Exception):
    """Raised inside the walk: the payload needs the full check."""


def is_plain(value: Any) -> bool:
    """Whether ``value`` holds only plain JSON and no ``%`` key (see the module docstring).

    True leaves the rest of the check to the encoder (``check_keys=True``).
    Never raises: False means "use the full check", not "refused".
    """
    kind = type(value)
    try:
        if kind is dict:
            _dict(value, 1)
        elif kind is list:
            _list(value, 1)
        else:
            return value is None
    except _NotPlain:
        return False
    return True


#: How much larger than its JSON text a value's BSON can be: 6.5 times at most
#: (an array of one-digit integers: 2 bytes of text each, 13 of BSON with a
#: 7-digit index), and 5 bytes of document header.
_BSON_PER_JSON_BYTE = 8


_PERCENT, _BACKSLASH = ord("%"), ord("\\")


def is_plain_json_text(text: bytes) -> bool:
    """Whether the value orjson decoded from ``text`` is one :func:`is_plain` passes.

    Judged from the bytes, with no walk: the caller knows orjson decoded
    ``text`` (so the value holds only dicts with string keys, lists,
    strings, 64-bit ints, finite floats, booleans and None) and the rest
    is read off the text, erring only towards False:

    - no ``%`` (nor its escape ``\\u0025``) and no escaped NUL anywhere, so in no key
      (one search for ``\\u00`` finds both escapes);
    - no more ``{`` and ``[`` bytes than the nesting limit, so no deeper nesting;
    - a text short enough that its BSON fits in a document.

    False means "walk it", not "refused".
    """
    return (
        len(text) * _BSON_PER_JSON_BYTE <= MAX_PAYLOAD_BYTES
        # A byte looked for as an int is a memchr; as bytes, a slower loop.
        and _PERCENT not in text
        # One search for both escapes, \u0025 and \u0000 (a text with another
        # escape of the first 256 code points is walked, which is only slower),
        # made only in a text with an escape at all.
        and (_BACKSLASH not in text or b"\\u00" not in text)
        and (len(text) <= MAX_NESTING or _opening_brackets(text) <= MAX_NESTING)
    )


#: What :func:`plain_copy` returns for a payload it does not copy.
NOT_PLAIN: Final = object()

#: orjson refuses, instead of writing them as their base type, subclasses of
#: str, int, dict and list, datetimes and dataclasses.
_STRICT_DUMPS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def plain_copy(value: Any) -> Any:
    """A fresh copy of ``value`` (a dict or a list), plain JSON stored as the full check stores it.

    orjson writes the value and reads it back, both in C. The copy holds
    only what orjson reads (see :func:`is_plain_json_text`), which the text
    then vouches for. It stands for ``value`` only when the two are equal:
    orjson writes a NaN or an infinity as ``null``, a tuple as an array, an
    ``Enum`` or a UUID as its value, and each of them then differs from what
    was read back. An ``IntEnum`` or a ``str`` enum member is equal to its
    value, which is what the full check stores for it too. A subclass of
    ``str``, ``int``, ``dict`` or ``list`` (as a key too), a datetime, a
    dataclass, an integer past 64 bits, and any other type, orjson refuses.

    Returns:
        The copy, or :data:`NOT_PLAIN`: "check it in full", not "refused".
        Like :func:`is_plain`, it leaves the key checks to the encoder.
    """
    kind = type(value)
    if kind is not dict and kind is not list:
        return NOT_PLAIN
    try:
        text = orjson.dumps(value, option=_STRICT_DUMPS)
    except TypeError:  # orjson.JSONEncodeError: a type, a key or an int it refuses
        return NOT_PLAIN
    if not is_plain_json_text(text):
        return NOT_PLAIN
    copy = orjson.loads(text)
    try:
        same = copy == value
    except Exception:  # an __eq__ of the caller's own that raises: the full check decides
        return NOT_PLAIN
    return copy if same else NOT_PLAIN


def _opening_brackets(text: bytes) -> int:
    """How many ``{`` and ``[`` bytes ``text`` holds.

    Counted as what deleting them removes: a deletion finds each with
    memchr, several times faster than ``bytes.count`` on a text of a few KB.
    """
    return len(text) - len(text.replace(b"{", b"").replace(b"[", b""))


#: The last payloads a decoder vouched for (:func:`vouch`): at most two, a
#: call's request and its response body. Replaced whole: threads see either
#: tuple, and the worst a race can do is cost a walk.
_VOUCHED: tuple[Any, ...] = ()


def vouch(value: Any) -> None:
    """Remember ``value`` as plain, for the record about to take it.

    For the capture: a dict or list it has just decoded and checked with
    :func:`is_plain_json_text`, handed to the recorder at once, with no
    code of the caller's in between that could change it in place. A
    record asking :func:`vouched` about the very same object then skips
    :func:`is_plain`; any other object is walked as usual.
    """
    global _VOUCHED
    _VOUCHED = (*_VOUCHED[-1:], value)


def vouched(value: Any) -> bool:
    """Whether ``value`` is a payload vouched for; the answer is given once."""
    global _VOUCHED
    held = _VOUCHED  # at most two: the last vouched for at the end
    if held and held[-1] is value:
        _VOUCHED = held[:-1]
        return True
    if len(held) == 2 and held[0] is value:
        _VOUCHED = held[1:]
        return True
    return False


def forget_vouched() -> None:
    """Forget every payload vouched for: code that could change them runs next."""
    global _VOUCHED
    _VOUCHED = ()


# `_dict` and `_list` repeat the same per-value branch on purpose: a shared
# helper would add a Python call per value on the hot path of every record.


def _dict(value: dict[Any, Any], depth: int) -> None:
    if depth > MAX_NESTING:
        raise _NotPlain
    for key, item in value.items():
        if type(key) is not str or "%" in key:
            raise _NotPlain
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not _isfinite(item):
                raise _NotPlain
        elif kind is dict:
            _dict(item, depth + 1)
        elif kind is list:
            _list(item, depth + 1)
        else:
            raise _NotPlain


def _list(value: list[Any], depth: int) -> None:
    if depth > MAX_NESTING:
        raise _NotPlain
    for item in value:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not _isfinite(item):
                raise _NotPlain
        elif kind is dict:
            _dict(item, depth + 1)
        elif kind is list:
            _list(item, depth + 1)
        else:
            raise _NotPlain
