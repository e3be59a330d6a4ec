"""Finding a request's session key, and parsing a request body as JSON.

Shared by the ASGI middleware and the FastAPI dependency, so that both read the
same places by the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from llmreq_mongo._capture.decode import loads_plain
from llmreq_mongo._checks import MAX_SESSION_KEY
from llmreq_mongo.errors import InvalidInput

__all__ = [
    "DEFAULT_SESSION_KEY_SOURCES",
    "NO_BODY",
    "SessionKeyFinder",
    "header_values",
    "parse_json_body",
]

#: Where the session key is looked for when no ``session_key_from`` is given, in order.
DEFAULT_SESSION_KEY_SOURCES: tuple[str, ...] = (
    "header:x-session-key",
    "cookie:session_key",
    "body:session_key",
    "query:session_key",
)
_SOURCE_KINDS = ("header", "cookie", "body", "query")


class _NoBody:
    """Marks a request whose body was not parsed (so ``body:`` sources find nothing)."""


NO_BODY: Any = _NoBody()


@dataclass(frozen=True)
class _Source:
    kind: str
    name: str

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


class SessionKeyFinder:
    """Finds a request's session key in the places given, first usable one wins.

    Each place is ``"kind:name"``: ``header:x-session-key`` (case-insensitive),
    ``cookie:session_key``, ``query:session_key`` or ``body:session_key`` (a key of the
    JSON body; dots reach into nested objects, as in ``body:metadata.session_key``).
    An empty value counts as absent. A value that is not a string (from the body, say
    ``{"$ne": ""}``) or is longer than 255 characters is ignored and counted, and the
    next place is tried: a session key is only ever a plain string.

    Raises:
        InvalidInput: a place is malformed or of an unknown kind.
    """

    __slots__ = ("sources",)

    def __init__(self, sources: Iterable[str] = DEFAULT_SESSION_KEY_SOURCES) -> None:
        if isinstance(sources, str):
            raise InvalidInput(
                "session_key_from takes a sequence of places such as "
                f"('header:x-session-key', 'body:session_key'), got the string {sources!r}"
            )
        parsed: list[_Source] = []
        for spec in sources:
            kind, sep, name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
            if not sep or kind not in _SOURCE_KINDS or not name.strip() or "" in name.split("."):
                raise InvalidInput(
                    f"session key place {spec!r} is not valid: write 'kind:name' where kind is "
                    f"one of {', '.join(_SOURCE_KINDS)}, for example 'header:x-session-key'"
                )
            parsed.append(_Source(kind, name.lower() if kind == "header" else name))
        self.sources: tuple[_Source, ...] = tuple(parsed)

    @property
    def needs_body(self) -> bool:
        """Whether any place is in the body."""
        return any(s.kind == "body" for s in self.sources)

    def find(self, scope: Mapping[str, Any], body: Any = NO_BODY) -> tuple[str | None, int]:
        """Look for the session key.

        Args:
            scope: the request's ASGI scope (headers, query string).
            body: the parsed JSON body, or ``NO_BODY`` when there is none.

        Returns:
            The session key (None when none was found) and how many unusable
            candidates were ignored on the way.
        """
        ignored = 0
        for source in self.sources:
            value = self._candidate(source, scope, body)
            if value is None or value == "":
                continue
            if isinstance(value, str) and len(value) <= MAX_SESSION_KEY:
                return value, ignored
            ignored += 1
        return None, ignored

    @staticmethod
    def _candidate(source: _Source, scope: Mapping[str, Any], body: Any) -> Any:
        if source.kind == "header":
            values = header_values(scope, source.name)
            return values[0] if values else None
        if source.kind == "cookie":
            return _cookie(scope, source.name)
        if source.kind == "query":
            return _query_value(scope, source.name)
        return _body_value(body, source.path)


def header_values(scope: Mapping[str, Any], name: str) -> list[str]:
    """The values of the request header ``name`` (lower case), in order.

    A value is read as UTF-8 when it is valid UTF-8, as Latin-1 otherwise:
    what httpx does, so that a session key sent as ``X-Session-Key: café`` is
    the same key whether the middleware or ``RecordingTransport`` reads it.
    """
    wanted = name.encode("latin-1")
    return [
        _header_text(value) for key, value in scope.get("headers") or () if key.lower() == wanted
    ]


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _cookie(scope: Mapping[str, Any], name: str) -> str | None:
    # A tolerant parse: one malformed cookie must not hide the others (the
    # standard library's SimpleCookie gives up on the whole header).
    for header in header_values(scope, "cookie"):
        for part in header.split(";"):
            key, sep, value = part.partition("=")
            if sep and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value
    return None


def _query_value(scope: Mapping[str, Any], name: str) -> str | None:
    raw: bytes = scope.get("query_string") or b""
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return None


def _body_value(body: Any, path: tuple[str, ...]) -> Any:
    value = body
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for every body: json.loads would build a new one per call for parse_constant.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_json_body(body: bytes) -> Any:
    """Parse a request body as strict JSON (no NaN or Infinity).

    Raises:
        ValueError: the body is empty or not JSON.
    """
    return parse_json_request(body)[0]


def parse_json_request(body: bytes) -> tuple[Any, bool]:
    """:func:`parse_json_body`, and whether the decoder vouches for the payload.

    True means plain JSON that a record stores as it is, without walking it
    (:func:`~llmreq_mongo._capture.decode.loads_plain`).

    Raises:
        ValueError: the body is empty or not JSON.
    """
    if not body.strip():
        raise ValueError("the body is empty")
    # orjson first, for speed; what it refuses (NaN among them) is read, or
    # refused, by the standard library's strict reading below.
    return loads_plain(body, exact=_strict_json)


def _strict_json(body: bytes) -> Any:
    try:
        # As json.loads does with bytes: UTF-8, -16 or -32, told apart by the first bytes.
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
