"""JSON as the capture reads it from a provider: :func:`loads`, with orjson.

A streamed answer is a hundred small JSON documents or more, each decoded
as it passes (the events of a stream) on the path of every response; orjson
decodes one in about a third of the time ``json.loads`` takes.

The result is always the one ``json.loads`` gives. orjson differs from it in
two ways, and both go to ``json.loads``:

- what orjson refuses and the standard library takes (``NaN`` and
  ``Infinity``, a float that overflows to infinity, an escaped lone
  surrogate, a UTF-16 body);
- an integer too large for 64 bits, which orjson reads as the nearest float
  where ``json.loads`` keeps it exact (and the capture then says the body
  cannot be stored). Such a number has at least 19 digits, so a text with no
  run of 19 digits, anywhere, is safe to hand to orjson: the check is one
  ``bytes.translate`` and one substring search.

One refusal is the capture's own: a text nested deeper than orjson reads
(1024 levels) makes ``json.loads`` exhaust the interpreter's stack, and its
``RecursionError`` becomes :class:`TooDeep`, a ``ValueError``, so that such a
text is undecodable JSON like any other to every caller (recording never
fails a call), yet can be told from a text that is not JSON at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from llmreq_mongo._queries import is_plain_json_text

__all__ = ["TooDeep", "loads", "loads_each", "loads_plain"]

# Every digit becomes "0", everything else a space: a run of 19 digits is then
# a run of 19 zeros. 2**63 has 19 digits: an integer that 64 bits cannot hold
# has at least as many.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


class TooDeep(ValueError):
    """The JSON text nests too deeply to be decoded (``json.loads`` ran out of stack)."""


def loads(data: str | bytes, *, exact: Callable[[Any], Any] = json.loads) -> Any:
    """``data`` decoded as JSON, exactly as ``exact`` (``json.loads``) decodes it.

    ``exact`` is a stricter reading built on ``json.loads`` (one that refuses
    ``NaN``, say): it decodes whatever orjson refuses or cannot read exactly,
    so the result, or the error, is always ``exact``'s. It must take every
    document orjson takes, and read it as ``json.loads`` does.

    Raises:
        TooDeep: ``data`` nests too deeply to decode.
        ValueError: ``data`` is not JSON (``json.JSONDecodeError``), or
            ``exact`` refuses it.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    value = _fast(raw)
    return _exactly(exact, data) if value is _REFUSED else value


def loads_plain(data: bytes, *, exact: Callable[[Any], Any] = json.loads) -> tuple[Any, bool]:
    """:func:`loads`, and whether the value is known to be plain JSON without a walk.

    True when orjson decoded ``data`` into a dict or a list and its bytes
    pass :func:`~llmreq_mongo._queries.is_plain_json_text`: the record can then
    store the value without walking it again. False says nothing either way.

    Raises:
        TooDeep: as :func:`loads`.
        ValueError: as :func:`loads`.
    """
    value = _fast(data)
    if value is _REFUSED:
        return _exactly(exact, data), False
    # A dict or a list, as is_plain wants (a body is one, all but always).
    return value, type(value) in _CONTAINERS and is_plain_json_text(data)


def loads_each(texts: list[bytes], source: bytes) -> list[Any] | None:
    """Each of ``texts`` decoded as :func:`loads` decodes it, when orjson alone can; or None.

    For the events of a stream read in one batch: each is still decoded on
    its own (joined into one array, a text's boundaries could move), but
    with one check of the digits, made on ``source``, the bytes the texts
    were cut from, between non-digits.

    Returns:
        The values, in order; or None when any text is one orjson must not
        decode alone (see the module docstring) or is not JSON: the caller
        then decodes each with :func:`loads`, which says what each one is.
    """
    if not _no_long_integer(source):
        return None
    try:
        return [orjson.loads(text) for text in texts]
    except orjson.JSONDecodeError:
        return None


_CONTAINERS = (dict, list)


#: What :func:`_fast` returns when orjson may not decode ``raw`` exactly.
_REFUSED = object()


def _exactly(exact: Callable[[Any], Any], data: str | bytes) -> Any:
    """``exact(data)``, its ``RecursionError`` raised as :class:`TooDeep`."""
    try:
        return exact(data)
    except RecursionError:
        # json.loads recurses once per level: a text orjson refused for its depth
        # (past 1024 levels) is deeper than the stack holds.
        raise TooDeep("the JSON nests too deeply to be read") from None


def _no_long_integer(raw: bytes) -> bool:
    """Whether ``raw`` holds no run of 19 digits, so no integer orjson reads inexactly."""
    return _LONG_RUN not in raw.translate(_DIGITS)


def _fast(raw: bytes) -> Any:
    """``raw`` decoded by orjson, or ``_REFUSED`` for ``exact`` to decode."""
    if _no_long_integer(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _REFUSED
