"""What an assembler or a body reader gives: the :class:`Outcome` of one response.

Shared by the readers of each API so that :class:`~.parser.ResponseParser`
turns any of them into an :class:`~.models.LLMResponse` the same way.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Literal, Protocol

from .models import TokenUsage
from .sse import SSEEvent

__all__ = [
    "API",
    "MAX_ERROR_CHARS",
    "MAX_FINISH_REASONS",
    "MAX_NAME_CHARS",
    "MAX_REASON_CHARS",
    "Assembler",
    "Outcome",
    "api_for_path",
    "clipped",
    "error_text",
    "event_left_out",
    "index_left_out",
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
# What a record keeps of the fields read from a response outside its body, so
# that a record whose body was dropped always fits in a document, whatever the
# upstream sent. Each is far beyond what an API sends: OpenAI's ``n`` is at most
# 128 choices; the longest finish reason is under 32 characters; model names
# and ids (a Bedrock ARN) about 100; an API's error message a few hundred.
#: The most finish reasons kept (the first choices that give one).
MAX_FINISH_REASONS = 128
#: The longest finish reason kept whole.
MAX_REASON_CHARS = 64
#: The longest ``model`` and ``response_id`` kept whole.
MAX_NAME_CHARS = 256
#: The longest ``error`` kept whole.
MAX_ERROR_CHARS = 4096
#: The most entries a list a stream fills by index (a message's tool calls, an
#: item's content parts) is grown to: far more than any API sends in one message.
MAX_INDEXED = 1024
#: How far past the entries received so far an index may reach (the APIs count
#: up from 0, one at a time; a little slack for a server that skips one).
MAX_INDEX_GAP = 16


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


def clipped(text: str, limit: int) -> str:
    """``text``, or its first ``limit - 1`` characters and ``…`` when it is longer.

    The ellipsis shows that a value was cut, rather than passing it off as whole.
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    if not isinstance(error, dict):  # decoded JSON: a dict, never another mapping
        return None
    message = error.get("message")
    kind = error.get("type") or error.get("code")
    if isinstance(message, str) and message:
        return f"{kind}: {message}" if isinstance(kind, str) and kind else message
    if isinstance(kind, str) and kind:
        return kind
    return "the response is an error object without a message"


def event_left_out(exc: Exception) -> str:
    """Why the body lacks an event of a stream that could not be decoded (``TooDeep``)."""
    return f"an event was left out of the body: {exc}"


def index_left_out(kind: str, index: int, count: int) -> str | None:
    """None when ``index`` may be filled in a list of ``count`` entries, else why it is not.

    A stream says by index where each piece goes, and the list is grown to
    reach it: an index far ahead (a 200-byte chunk saying 20,000,000) would
    cost seconds and gigabytes of empty entries. An index is followed only
    within :data:`MAX_INDEX_GAP` of the entries received and below
    :data:`MAX_INDEXED`, so the work stays bounded by the bytes received;
    the piece is left out of the body, and the text returned says so.
    """
    if 0 <= index < min(count + MAX_INDEX_GAP, MAX_INDEXED):
        return None
    return (
        f"a piece for {kind} index {index} was left out of the body: an index must be"
        f" below {MAX_INDEXED} and at most {MAX_INDEX_GAP} past the last one received"
    )


def usage_in_tail(tail: str) -> Any:
    """The last ``"usage": {...}`` object in the end of a JSON text, or None.

    Used for an event or a body too large to keep, whose usage sits near its end.
    """
    decoder = json.JSONDecoder()
    for match in reversed(list(_USAGE_KEY.finditer(tail))):
        try:
            value, _ = decoder.raw_decode(tail, match.end())
        except (ValueError, RecursionError):  # too deep for the stack: not a usage
            continue
        if isinstance(value, dict):
            return value
    return None
