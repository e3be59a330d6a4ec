"""Non-streamed JSON bodies: which API answered, and what its body says.

The request path decides when it names an API; otherwise the body's shape
does (``"object": "chat.completion"``, ``"object": "response"``,
``"type": "message"``). A body that is only an ``error`` object (OpenAI's
``{"error": {...}}``, Anthropic's ``{"type": "error", "error": {...}}``)
gives the ``error`` text whatever the API.

For a body too large to keep, :func:`read_oversized_body` reads what it can
from its first and last bytes: the id and model open every API's body, the
usage closes it.
"""

from __future__ import annotations

import re
from typing import Any

from .chat import read_chat_body
from .messages import read_messages_body
from .outcome import API, Outcome, error_text, usage_in_tail
from .responses import read_responses_body
from .usage import usage_from_anthropic, usage_from_chat, usage_from_responses

__all__ = ["api_of_body", "api_of_event", "read_body", "read_oversized_body"]

_READERS = {
    "chat": read_chat_body,
    "responses": read_responses_body,
    "messages": read_messages_body,
}
_USAGE_MAPS = {
    "chat": usage_from_chat,
    "responses": usage_from_responses,
    "messages": usage_from_anthropic,
}
# The first "id" and "model" strings of a body's head; an escaped quote inside
# a string cannot match, since it is preceded by a backslash.
_ID = re.compile(rb'"id"\s*:\s*"([^"\\]{1,200})"')
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
# A choice's finish reason (chat) and a message's stop reason (Anthropic) come
# after the content, so they are in the tail. In valid JSON a quoted name
# followed by a colon is always a key, never text inside a string (whose
# quotes are escaped).
_REASON = re.compile(rb'"(?:finish|stop)_reason"\s{0,8}:\s{0,8}"([^"\\]{1,200})"')


def api_of_body(body: Any) -> API | None:
    """The API a non-streamed body comes from, by its shape, or None."""
    if not isinstance(body, dict):
        return None
    kind = body.get("object")
    if kind == "chat.completion":
        return "chat"
    if kind == "response":
        return "responses"
    if body.get("type") == "message":
        return "messages"
    return None


def api_of_event(event: str, data: str) -> API | None:
    """The API a stream comes from, by its first event, or None."""
    if event.startswith("response.") or '"type":"response.' in data[:64]:
        return "responses"
    if event in ("message_start", "ping") or '"type":"message_start"' in data[:64]:
        return "messages"
    if '"chat.completion.chunk"' in data:
        return "chat"
    return None


def read_body(body: Any, api: API | None) -> Outcome:
    """What a parsed JSON body says; ``api`` from the path, or None to go by its shape."""
    if not isinstance(body, dict):
        return Outcome(body=body)
    shaped = api_of_body(body)
    if shaped is not None:
        return _READERS[shaped](body)
    if body.get("error"):
        return Outcome(body=body, error=error_text(body["error"]))
    if api is not None:
        return _READERS[api](body)
    return Outcome(body=body)


def read_oversized_body(head: bytes, tail: bytes, api: API | None) -> Outcome:
    """The id, model, finish reasons and usage of a JSON body of which only the ends were kept.

    Finish reasons are read from the tail alone: the two ends overlap when the
    body is only a little over the limit, and a reason read in both would
    count twice. Those of the choices before the tail (a body of several
    long choices) are not found. The Responses API's status opens its body
    among those of its output items, which cannot be told apart there: it is
    not read.
    """
    found_id = _ID.search(head)
    found_model = _MODEL.search(head)
    usage = usage_in_tail(tail.decode("utf-8", "replace"))
    usage_map = _USAGE_MAPS.get(api or _guess_api(usage), usage_from_chat)
    return Outcome(
        response_id=found_id.group(1).decode("utf-8", "replace") if found_id else None,
        model=found_model.group(1).decode("utf-8", "replace") if found_model else None,
        finish_reasons=[
            found.group(1).decode("utf-8", "replace") for found in _REASON.finditer(tail)
        ],
        usage=usage_map(usage),
    )


def _guess_api(usage: Any) -> API:
    if isinstance(usage, dict) and "prompt_tokens" not in usage:
        return "messages" if "cache_read_input_tokens" in usage else "responses"
    return "chat"
