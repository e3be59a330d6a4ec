"""What an assembler or a body reader gives: the :class:`Outcome` of one response.

Shared by the readers of each API so that :class:`~.parser.ResponseParser`
turns any of them into an :class:`~.models.LLMResponse` the same way.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from .models import TokenUsage
from .sse import SSEEvent

__all__ = [
    "API",
    "Assembler",
    "Outcome",
    "api_for_path",
    "error_text",
    "string_or_none",
    "usage_in_tail",
]

#: The APIs whose responses are understood.
API = Literal["chat", "responses", "messages"]

_PATH_ENDINGS: tuple[tuple[str, API], ...] = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/messages", "messages"),
)
_USAGE_KEY = re.compile(r'"usage"\s*:\s*')


@dataclasses.dataclass
class Outcome:
    """The parts of a response a record keeps, read from its body or its stream."""

    body: Any = None
    model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = dataclasses.field(default_factory=list)
    usage: TokenUsage | None = None
    error: str | None = None


class Assembler(Protocol):
    """Builds a stream's non-streamed equivalent from its events."""

    def event(self, event: SSEEvent) -> None:
        """Take one event of the stream."""

    def drop_body(self) -> None:
        """Stop keeping the body (it is over the limit); keep reading usage and ids."""

    def outcome(self) -> Outcome:
        """What was received; ``error`` says so when the stream did not end properly."""


def api_for_path(path: str | None) -> API | None:
    """The API a request path calls (``/v1/chat/completions`` is ``"chat"``), or None.

    The path may carry a prefix (a proxy's, Azure's deployments) and a query.
    """
    if not path:
        return None
    path = path.split("?", 1)[0].rstrip("/")
    for ending, api in _PATH_ENDINGS:
        if path.endswith(ending):
            return api
    return None


def string_or_none(value: Any) -> str | None:
    """``value`` if it is a string, else None: providers' fields are read, never trusted."""
    return value if isinstance(value, str) else None


def error_text(error: Any) -> str | None:
    """A readable line for an API's ``error`` object (OpenAI's or Anthropic's), or None.

    ``{"type": "rate_limit_error", "message": "Slow down"}`` gives
    ``"rate_limit_error: Slow down"``; a bare string is kept as it is.
    """
    if isinstance(error, str):
        return error or None
    if not isinstance(error, Mapping):
        return None
    message = error.get("message")
    kind = error.get("type") or error.get("code")
    if isinstance(message, str) and message:
        return f"{kind}: {message}" if isinstance(kind, str) and kind else message
    if isinstance(kind, str) and kind:
        return kind
    return "the response is an error object without a message"


def usage_in_tail(tail: str) -> Any:
    """The last ``"usage": {...}`` object in the end of a JSON text, or None.

    Used for an event or a body too large to keep, whose usage sits near its end.
    """
    decoder = json.JSONDecoder()
    for match in reversed(list(_USAGE_KEY.finditer(tail))):
        try:
            value, _ = decoder.raw_decode(tail, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
