"""OpenAI chat completions: the JSON body, and a stream assembled into one.

A stream is a series of ``chat.completion.chunk`` objects, then
``data: [DONE]``. The assembled body is what the same call would have
returned without ``stream``: one ``choices[i].message`` per choice index,
its ``content`` (and ``refusal``) concatenated, its ``tool_calls`` merged by
``index`` with their ``function.arguments`` concatenated (``id``, ``type``
and ``function.name`` taken from the first delta that has them), and its
``finish_reason``. Usage comes from the last chunk that carries one (the
final chunk of ``stream_options.include_usage``): it is taken, never summed.
"""

from __future__ import annotations

from typing import Any

from .decode import TooDeep, loads, loads_each
from .outcome import (
    MAX_FINISH_REASONS,
    MAX_REASON_CHARS,
    Outcome,
    clipped,
    error_text,
    event_left_out,
    index_left_out,
    string_or_none,
    usage_in_tail,
)
from .sse import SSEEvent
from .usage import usage_from_chat

__all__ = ["ChatStream", "read_chat_body"]

# Fields of a delta that are set once: a later value never replaces or extends them.
_SET_ONCE = frozenset({"role", "id", "type", "name", "index"})
# How deep deltas are merged (see _merge).
_MAX_DEPTH = 32
_NOT_ENDED = "the stream ended before its final [DONE] event: the body holds what was received"


def read_chat_body(body: dict[str, Any]) -> Outcome:
    """Read a non-streamed chat completion."""
    choices = body.get("choices")
    reasons = [
        choice["finish_reason"]
        for choice in (choices if isinstance(choices, list) else [])
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str)
    ]
    return Outcome(
        body=body,
        model=string_or_none(body.get("model")),
        response_id=string_or_none(body.get("id")),
        finish_reasons=reasons,
        usage=usage_from_chat(body.get("usage")),
        error=error_text(body.get("error")),
    )


def _merge(into: dict[str, Any], delta: dict[str, Any], depth: int = 0) -> str | None:
    """Merge one delta object into what was received before.

    Returns why a piece of it was left out (a tool call index out of reach),
    or None. Objects nested deeper than :data:`_MAX_DEPTH` are taken whole, a
    later one replacing the earlier: the deltas of an API nest a few levels,
    and merging recursively a delta nested a thousand levels (orjson reads
    up to 1024) would exhaust the stack.
    """
    left_out: str | None = None
    for key, value in delta.items():
        if value is None:
            into.setdefault(key, None)
            continue
        merged = depth < _MAX_DEPTH
        have = into.get(key)
        if have is None:
            if isinstance(value, list) and key == "tool_calls":
                into[key] = have = []
            elif isinstance(value, dict) and merged:
                into[key] = have = {}
            else:
                into[key] = value
                continue
        if key in _SET_ONCE:
            continue
        if isinstance(have, str) and isinstance(value, str):
            into[key] = have + value
        elif isinstance(have, dict) and isinstance(value, dict) and merged:
            left_out = _merge(have, value, depth + 1) or left_out
        elif key == "tool_calls" and isinstance(have, list) and isinstance(value, list):
            left_out = _merge_indexed(have, value, depth + 1) or left_out
        elif isinstance(have, list) and isinstance(value, list):
            have.extend(value)
        else:
            into[key] = value
    return left_out


def _merge_indexed(have: list[dict[str, Any]], deltas: list[Any], depth: int) -> str | None:
    """Merge tool call deltas by their ``index`` (one without goes to a new call)."""
    left_out: str | None = None
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index")
        position = index if type(index) is int and index >= 0 else len(have)
        refused = index_left_out("tool call", position, len(have))
        if refused is not None:
            left_out = left_out or refused
            continue
        while len(have) <= position:
            have.append({})
        left_out = _merge(have[position], delta, depth) or left_out
    return left_out


class ChatStream:
    """Assembles a chat completions stream (see the module docstring)."""

    __slots__ = (
        "_choices",
        "_done",
        "_error",
        "_keep",
        "_left_out",
        "_pieces",
        "_reasons",
        "_top",
        "_usage",
    )

    def __init__(self) -> None:
        self._top: dict[str, Any] | None = None
        self._choices: dict[int, dict[str, Any]] = {}
        self._reasons: dict[int, str] = {}
        self._pieces: dict[int, list[str]] = {}
        self._usage: Any = None
        self._done = False
        self._error: str | None = None
        # The first piece the body lacks, and why (said when nothing worse is).
        self._left_out: str | None = None
        self._keep = True

    def event(self, event: SSEEvent) -> None:
        data = event.data
        if data == "[DONE]":
            self._done = True
            return
        if event.overflowed:
            # Too large to keep (one huge delta): a usage it carries is at its end.
            usage = usage_in_tail(data)
            if usage is not None:
                self._usage = usage
            return
        try:
            chunk = loads(data)
        except TooDeep as exc:
            self._left_out = self._left_out or event_left_out(exc)
            return
        except ValueError:
            return
        self._chunk(chunk)

    def data_events(self, texts: list[bytes], source: bytes) -> bool:
        """Take a batch of events given by their data alone, as :meth:`event` would take each.

        ``texts`` are the data of the events ``source`` holds, in order
        (:meth:`~.sse.SSEParser.data_of_whole_events`). Each is decoded on
        its own, by orjson in one loop, and the most common chunk, one more
        piece of one choice's content, is taken inline.

        Returns:
            Whether the events were taken. False, with nothing taken, when
            any of them is not for orjson alone: they are then to be taken
            one by one with :meth:`event`.
        """
        done = b"[DONE]" in texts
        if done:
            texts = [text for text in texts if text != b"[DONE]"]
        chunks = loads_each(texts, source)
        if chunks is None:
            return False
        if done:
            self._done = True
        top, choices, pieces = self._top, self._choices, self._pieces
        for chunk in chunks:
            # The chunk _chunk() and _choice() would add one piece of content to
            # a choice already seen, and do nothing else with: that, inline. (A
            # dropped body has no choices: drop_body() empties them, for good.)
            if (
                top is not None
                and type(chunk) is dict
                and chunk.get("usage") is None
                and not chunk.get("error")
            ):
                listed = chunk.get("choices")
                if type(listed) is list and len(listed) == 1:
                    choice = listed[0]
                    if type(choice) is dict and choice.get("finish_reason") is None:
                        index = choice.get("index")
                        delta = choice.get("delta")
                        if (
                            type(index) is int
                            and index in choices
                            and type(delta) is dict
                            and len(delta) == 1
                            and type(delta.get("content")) is str
                            and type(choice.get("logprobs")) is not dict
                        ):
                            if "system_fingerprint" in chunk:
                                top["system_fingerprint"] = chunk["system_fingerprint"]
                            pieces.setdefault(index, []).append(delta["content"])
                            continue
            self._chunk(chunk)
            top = self._top
        return True

    def _chunk(self, chunk: Any) -> None:
        """Take one decoded chunk of the stream."""
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            self._error = error_text(chunk["error"])
            return
        if self._top is None:
            self._top = {
                "system_fingerprint": None,
                **{k: v for k, v in chunk.items() if k not in ("choices", "obfuscation", "usage")},
                "object": "chat.completion",
            }
        elif "system_fingerprint" in chunk:
            self._top["system_fingerprint"] = chunk["system_fingerprint"]
        usage = chunk.get("usage")
        if usage is not None:
            self._usage = usage
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index")
        if type(index) is not int:
            return
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and (
            index in self._reasons or len(self._reasons) < MAX_FINISH_REASONS
        ):
            # Bounded as the record's field is, so that thousands of hostile
            # choices cost nothing once the body is dropped.
            self._reasons[index] = clipped(reason, MAX_REASON_CHARS)
        if not self._keep:
            return
        snapshot = self._choices.get(index)
        if snapshot is None:
            snapshot = self._choices[index] = {
                "index": index,
                "message": {},
                "finish_reason": None,
                "logprobs": None,
            }
        delta = choice.get("delta")
        if type(delta) is dict:
            content = delta.get("content")
            if len(delta) == 1 and type(content) is str:
                # Nearly every chunk of a text answer: one more piece of content,
                # joined once at the end (adding to a string each time is quadratic).
                self._pieces.setdefault(index, []).append(content)
            else:
                self._flush(index)
                self._note(_merge(snapshot["message"], delta))
        if isinstance(reason, str):
            snapshot["finish_reason"] = reason
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            if snapshot["logprobs"] is None:
                snapshot["logprobs"] = {"content": None, "refusal": None}
            self._note(_merge(snapshot["logprobs"], logprobs))

    def _note(self, left_out: str | None) -> None:
        self._left_out = self._left_out or left_out

    def _flush(self, index: int) -> None:
        pieces = self._pieces.pop(index, None)
        if pieces:
            message = self._choices[index]["message"]
            have = message.get("content")
            message["content"] = (have if isinstance(have, str) else "") + "".join(pieces)

    def drop_body(self) -> None:
        self._keep = False
        self._choices = {}
        self._pieces = {}

    def outcome(self) -> Outcome:
        top = self._top or {}
        body: dict[str, Any] | None = None
        if self._keep and self._top is not None:
            choices = []
            for index in sorted(self._choices):
                self._flush(index)
                choice = self._choices[index]
                message = choice["message"]
                message.setdefault("role", "assistant")
                message.setdefault("content", None)
                for call in message.get("tool_calls") or ():
                    call.pop("index", None)
                choices.append(choice)
            body = {**self._top, "choices": choices}
            if self._usage is not None:
                body["usage"] = self._usage
        error = self._error
        if error is None and not self._done:
            error = _NOT_ENDED
        error = error or self._left_out
        return Outcome(
            body=body,
            model=string_or_none(top.get("model")),
            response_id=string_or_none(top.get("id")),
            finish_reasons=[self._reasons[i] for i in sorted(self._reasons)],
            usage=usage_from_chat(self._usage),
            error=error,
        )
