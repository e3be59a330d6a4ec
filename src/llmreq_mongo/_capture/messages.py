"""Anthropic Messages: the JSON body, and a stream assembled into the final message.

The message starts as ``message_start`` gives it; each
``content_block_start`` adds a block, whose ``content_block_delta`` events
extend it (``text_delta`` its text, ``thinking_delta`` its thinking,
``signature_delta`` its signature, ``citations_delta`` its citations,
``input_json_delta`` the JSON text of a tool's input, parsed at
``content_block_stop``); ``message_delta`` sets ``stop_reason`` and the
usage. Usage counts in ``message_delta`` are cumulative: each one given
replaces the one before (``output_tokens`` from ``message_delta``, input and
cache counts from ``message_start`` unless a later event gives them); they
are never summed. ``message_stop`` ends the stream; an ``error`` event
becomes the ``error``.
"""

from __future__ import annotations

from typing import Any

from .decode import TooDeep, loads
from .outcome import Outcome, error_text, event_left_out, string_or_none
from .sse import SSEEvent
from .usage import usage_from_anthropic

__all__ = ["MessagesStream", "read_messages_body"]

_NOT_ENDED = "the stream ended before message_stop: the body holds what was received"
_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking"}


def read_messages_body(body: dict[str, Any]) -> Outcome:
    """Read a non-streamed message."""
    reason = string_or_none(body.get("stop_reason"))
    return Outcome(
        body=body,
        model=string_or_none(body.get("model")),
        response_id=string_or_none(body.get("id")),
        finish_reasons=[reason] if reason else [],
        usage=usage_from_anthropic(body.get("usage")),
        error=error_text(body.get("error")) if body.get("type") == "error" else None,
    )


class MessagesStream:
    """Assembles a Messages stream (see the module docstring)."""

    __slots__ = ("_blocks", "_ended", "_error", "_json", "_keep", "_message", "_texts", "_usage")

    def __init__(self) -> None:
        self._message: dict[str, Any] | None = None
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._texts: dict[tuple[int, str], list[str]] = {}
        self._usage: dict[str, Any] = {}
        self._ended = False
        self._error: str | None = None
        self._keep = True

    def event(self, event: SSEEvent) -> None:
        if event.overflowed:
            return
        try:
            data = loads(event.data)
        except TooDeep as exc:
            self._error = self._error or event_left_out(exc)
            return
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type", event.event)
        if kind == "content_block_delta":
            if self._keep:
                self._delta(data)
        elif kind == "content_block_start":
            block, index = data.get("content_block"), data.get("index")
            if self._keep and isinstance(block, dict) and type(index) is int:
                self._blocks[index] = block
        elif kind == "content_block_stop":
            if self._keep and type(data.get("index")) is int:
                self._stop(data.get("index"))
        elif kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self._message = message
                self._take_usage(message.get("usage"))
        elif kind == "message_delta":
            self._message_delta(data)
        elif kind == "message_stop":
            self._ended = True
        elif kind == "error":
            self._error = error_text(data.get("error")) or "the stream sent an error event"

    def _delta(self, data: dict[str, Any]) -> None:
        index = data.get("index")
        # Blocks are kept by index in a dict, so a huge index costs nothing; a
        # non-integer one (a list) could not even be looked up.
        block = self._blocks.get(index) if type(index) is int else None
        delta = data.get("delta")
        if block is None or not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "input_json_delta":
            text = delta.get("partial_json")
            if isinstance(text, str):
                self._json.setdefault(data["index"], []).append(text)
        elif kind in _DELTA_FIELDS:
            key = _DELTA_FIELDS[kind]
            text = delta.get(key)
            if isinstance(text, str):
                # Joined once, when the block is read (adding each time is quadratic).
                self._texts.setdefault((data["index"], key), []).append(text)
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature")
        elif kind == "citations_delta":
            citations = block.get("citations")
            if not isinstance(citations, list):
                citations = block["citations"] = []
            citations.append(delta.get("citation"))

    def _stop(self, index: Any) -> None:
        parts = self._json.pop(index, None)
        block = self._blocks.get(index)
        if parts is None or block is None:
            return
        text = "".join(parts)
        if not text:
            return
        try:
            block["input"] = loads(text)  # exact: a tool's arguments are kept as sent
        except ValueError:  # TooDeep too
            # Kept as received, so nothing is lost; the stream's outcome says why.
            block["input"] = text
            self._error = f"the tool input of content block {index} is not valid JSON"

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                if value is not None:
                    self._usage[key] = value

    def _message_delta(self, data: dict[str, Any]) -> None:
        self._take_usage(data.get("usage"))
        delta = data.get("delta")
        if isinstance(delta, dict) and self._message is not None:
            for key, value in delta.items():
                if value is not None or key in ("stop_reason", "stop_sequence", "stop_details"):
                    self._message[key] = value

    def _join_texts(self) -> None:
        for (index, key), pieces in self._texts.items():
            block = self._blocks.get(index)
            if block is not None:
                have = block.get(key)
                block[key] = (have if isinstance(have, str) else "") + "".join(pieces)
        self._texts = {}

    def drop_body(self) -> None:
        self._keep = False
        self._blocks = {}
        self._json = {}
        self._texts = {}

    def outcome(self) -> Outcome:
        message = self._message
        # What the stream said went wrong before its blocks are closed here: a
        # block a cut stream left open holds part of its tool input, which is
        # not valid JSON because of the cut, so the cut is what to report.
        error = self._error
        body: dict[str, Any] | None = None
        if message is not None and self._keep:
            for index in list(self._json):
                self._stop(index)
            self._join_texts()
            body = {
                **message,
                "content": [self._blocks[i] for i in sorted(self._blocks)],
                "usage": {**(message.get("usage") or {}), **self._usage},
            }
        reason = string_or_none((message or {}).get("stop_reason"))
        if error is None:
            error = self._error if self._ended else _NOT_ENDED
        return Outcome(
            body=body,
            model=string_or_none((message or {}).get("model")),
            response_id=string_or_none((message or {}).get("id")),
            finish_reasons=[reason] if reason else [],
            usage=usage_from_anthropic(self._usage or None),
            error=error,
        )
