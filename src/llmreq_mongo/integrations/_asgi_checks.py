"""The checks behind :class:`~llmreq_mongo.integrations.asgi.LLMRequestLogger`'s options.

Which paths and methods are recorded, the size options, and a request's declared
``Content-Length``: each read once, when the middleware is built or the request arrives.
And a request's path as the middleware's log lines name it (:func:`logged_path`).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, MutableMapping
from typing import Any

from llmreq_mongo.errors import InvalidInput

from ._session_keys import header_values

__all__ = ["check_size", "content_length", "logged_path", "methods_of", "split_paths"]


def check_size(name: str, value: Any) -> int:
    """``value`` if it is a positive number of bytes.

    Raises:
        InvalidInput: not an integer (a bool is not one), or not positive.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer number of bytes, got {value!r}")
    if value <= 0:
        raise InvalidInput(f"{name} must be positive, got {value}")
    return value


def split_paths(
    paths: Iterable[str | re.Pattern[str]],
) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    if isinstance(paths, (str, re.Pattern)):
        raise InvalidInput(
            f"paths takes a sequence of paths and patterns, got the single value {paths!r}; "
            "wrap it in a list"
        )
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for path in paths:
        if isinstance(path, re.Pattern):
            if not isinstance(path.pattern, str):
                raise InvalidInput(f"path pattern {path!r} must be a str pattern, not bytes")
            patterns.append(path)
        elif isinstance(path, str) and path.startswith("/"):
            exact.add(path)
        else:
            raise InvalidInput(
                f"path {path!r} is neither an absolute path ('/v1/chat/completions') "
                "nor a compiled pattern (re.compile(r'/v1/.+'))"
            )
    if not exact and not patterns:
        raise InvalidInput("paths is empty: give at least one path or pattern to record")
    return frozenset(exact), tuple(patterns)


def methods_of(methods: Iterable[str]) -> frozenset[str]:
    if isinstance(methods, str):
        raise InvalidInput(f"methods takes a sequence such as ('POST',), got {methods!r}")
    result = set()
    for method in methods:
        if not isinstance(method, str) or not method.isalpha():
            raise InvalidInput(f"{method!r} is not an HTTP method")
        result.add(method.upper())
    if not result:
        raise InvalidInput("methods is empty: give at least one HTTP method, such as 'POST'")
    return frozenset(result)


_ASCII_DIGITS = re.compile(r"[0-9]+")
# Digits beyond this many announce more than any body this middleware reads; int() of
# thousands of digits is also refused by Python itself.
_MAX_LENGTH_DIGITS = 18
_HUGE_LENGTH: int = 10**_MAX_LENGTH_DIGITS


def content_length(scope: MutableMapping[str, Any]) -> int | None:
    """The declared body size: None without the header.

    Raises:
        ValueError: the header is not a number of bytes in ASCII digits (``str.isdigit``
            also accepts ``"²"`` and other scripts' digits, which ``int`` then refuses or
            reads as another number), or is repeated with different values.
    """
    values = {value.strip(" \t") for value in header_values(scope, "content-length")}
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"the Content-Length header has several values {sorted(values)!r}")
    (text,) = values
    if not _ASCII_DIGITS.fullmatch(text):
        raise ValueError(f"the Content-Length header {text!r} is not a number of bytes")
    if len(text) > _MAX_LENGTH_DIGITS:
        return _HUGE_LENGTH
    return int(text)


def logged_path(path: object) -> str:
    """A request's path as a log line names it: percent-encoded, as uvicorn's access log does.

    The server has decoded the path the client sent, so it may hold anything:
    ``/v1/agents/%1b[2J/run`` arrives holding an escape sequence, which a
    terminal reading the log would obey, and a ``%0a`` would start a forged
    log line. Encoded again, it is one line, as the client wrote it.
    """
    return urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~") if isinstance(path, str) else "?"
