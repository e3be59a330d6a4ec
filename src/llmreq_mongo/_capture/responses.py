"""The OpenAI Responses API: the JSON body, and a stream read down to its final response.

A stream ends with ``response.completed`` (or ``response.failed`` or
``response.incomplete``), whose ``response`` is the non-streamed body. Until
then the output is followed item by item (``response.output_item.*``, the
text and argument deltas), so that a stream cut short still yields what was
received. ``finish_reasons`` holds the reason of an incomplete response
(``max_output_tokens``, ``content_filter``), else its ``status``.
"""

from __future__ import annotations

from typing import Any

from .decode import TooDeep, loads
from .outcome import (
    Outcome,
    error_text,
    event_left_out,
    index_left_out,
    string_or_none,
    usage_in_tail,
)
from .sse import SSEEvent
from .usage import usage_from_responses

__all__ = ["ResponsesStream", "read_responses_body"]

_TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
_NOT_ENDED = "the stream ended before response.completed: the body holds what was received"


def read_responses_body(body: dict[str, Any]) -> Outcome:
    """Read a non-streamed response object."""
    status = string_or_none(body.get("status"))
    details = body.get("incomplete_details")
    reason = string_or_none(details.get("reason")) if isinstance(details, dict) else None
    error = error_text(body.get("error"))
    if error is None and status == "failed":
        error = "the response failed without saying why"
    return Outcome(
        body=body,
        model=string_or_none(body.get("model")),
        response_id=string_or_none(body.get("id")),
        finish_reasons=[reason] if reason else [status] if status else [],
        usage=usage_from_responses(body.get("usage")),
        error=error,
    )


class ResponsesStream:
    """Assembles a Responses API stream (see the module docstring)."""

    __slots__ = (
        "_error",
        "_final",
        "_items",
        "_keep",
        "_left_out",
        "_snapshot",
        "_texts",
        "_usage",
    )

    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._items: dict[int, dict[str, Any]] = {}
        # Deltas not yet joined into their part or item (adding each time is
        # quadratic), by the id of the object they extend; the object is kept
        # beside them so that the id stays its own.
        self._texts: dict[tuple[int, str], tuple[dict[str, Any], list[str]]] = {}
        self._final: Outcome | None = None
        self._error: str | None = None
        # The first piece the body lacks, and why (said when nothing worse is).
        self._left_out: str | None = None
        self._keep = True
        self._usage: Any = None

    def event(self, event: SSEEvent) -> None:
        if event.overflowed:
            if event.event in _TERMINAL:
                # Too large to keep: its usage is near its end.
                self._usage = usage_in_tail(event.data)
                self._final = Outcome()
            return
        try:
            data = loads(event.data)
        except TooDeep as exc:
            self._left_out = self._left_out or event_left_out(exc)
            return
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type", event.event)
        if kind in _TERMINAL:
            self._terminal(data)
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            response = data.get("response")
            if isinstance(response, dict):
                self._snapshot = response
        elif kind == "error":
            self._error = error_text(data.get("error", data)) or "the stream sent an error event"
        elif self._keep:
            self._output(kind, data)

    def _terminal(self, data: dict[str, Any]) -> None:
        response = data.get("response")
        if not isinstance(response, dict):
            return
        assembled = response.get("output") is None and self._keep
        if assembled:
            response["output"] = [self._items[i] for i in sorted(self._items)]
        self._final = read_responses_body(response)
        if assembled:
            # Only an output assembled here can lack a piece; a given one is whole.
            self._final.error = self._final.error or self._left_out

    def _output(self, kind: str, data: dict[str, Any]) -> None:
        index = data.get("output_index")
        if type(index) is not int:
            return
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = data.get("item")
            if isinstance(item, dict):
                self._items[index] = item
            return
        item = self._items.get(index)
        if item is None:
            return
        if kind == "response.content_part.added":
            self._part_added(item, data)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            content, at = item.get("content"), data.get("content_index")
            delta = data.get("delta")
            if isinstance(content, list) and type(at) is int and at < len(content):
                key = "text" if kind == "response.output_text.delta" else "refusal"
                part = content[at]
                if isinstance(part, dict) and isinstance(delta, str):
                    self._texts.setdefault((id(part), key), (part, []))[1].append(delta)
        elif kind == "response.function_call_arguments.delta":
            delta = data.get("delta")
            if isinstance(delta, str):
                self._texts.setdefault((id(item), "arguments"), (item, []))[1].append(delta)

    def _part_added(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        part, at = data.get("part"), data.get("content_index")
        content = item.setdefault("content", [])
        if not (isinstance(part, dict) and type(at) is int and isinstance(content, list)):
            return
        refused = index_left_out("content part", at, len(content))
        if refused is not None:
            self._left_out = self._left_out or refused
            return
        while len(content) <= at:
            content.append({})
        content[at] = part

    def drop_body(self) -> None:
        self._keep = False
        self._items = {}
        self._texts = {}

    def outcome(self) -> Outcome:
        final = self._final
        snapshot = self._snapshot
        if final is not None:
            if not self._keep:
                final.body = None
            if snapshot is not None:
                final.model = final.model or string_or_none(snapshot.get("model"))
                final.response_id = final.response_id or string_or_none(snapshot.get("id"))
            if final.usage is None and self._usage is not None:
                final.usage = usage_from_responses(self._usage)
            if self._error and not final.error:
                final.error = self._error
            return final
        body = None
        for (_, key), (target, pieces) in self._texts.items():
            have = target.get(key)
            target[key] = (have if isinstance(have, str) else "") + "".join(pieces)
        self._texts = {}
        if snapshot is not None and self._keep:
            body = {**snapshot, "output": [self._items[i] for i in sorted(self._items)]}
        return Outcome(
            body=body,
            model=string_or_none((snapshot or {}).get("model")),
            response_id=string_or_none((snapshot or {}).get("id")),
            error=self._error or _NOT_ENDED,
        )
