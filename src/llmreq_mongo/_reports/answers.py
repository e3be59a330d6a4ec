"""What a response body says: the assistant's text and tool calls, or the error.

Three body shapes are read, as the capture assembles them (a stream's body
is the equivalent of the non-streamed one): OpenAI chat completions
(``choices[].message``), the OpenAI Responses API (``output[]`` items of
type ``message`` and ``function_call``) and Anthropic Messages
(``content[]`` blocks of type ``text`` and ``tool_use``). Anything else is
not an answer (:func:`answer_of` gives None) and is shown as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "ToolCall", "answer_of", "error_of"]


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to call: its name and its arguments as text (JSON)."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Answer:
    """The assistant's side of a call.

    Attributes:
        text: what it said (choices or text blocks joined by a new line);
            "" when it only called tools.
        tool_calls: the tools it called, in order.
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _chat(choices: list[Any]) -> Answer:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        text = _text_of(message.get("content"))
        if text:
            texts.append(text)
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                name = str(function.get("name") or "?")
                calls.append(ToolCall(name, _arguments(function.get("arguments", ""))))
    return Answer("\n".join(texts), tuple(calls))


def _responses(output: list[Any]) -> Answer:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text = _text_of(item.get("content"))
            if text:
                texts.append(text)
        elif item.get("type") == "function_call":
            name = str(item.get("name") or "?")
            calls.append(ToolCall(name, _arguments(item.get("arguments", ""))))
    return Answer("\n".join(texts), tuple(calls))


def _messages(content: list[Any]) -> Answer:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            name = str(block.get("name") or "?")
            calls.append(ToolCall(name, _arguments(block.get("input", {}))))
    return Answer("\n".join(texts), tuple(calls))


def answer_of(body: Any) -> Answer | None:
    """The assistant's answer in ``body``, or None when it is not one of the three shapes."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("choices"), list):
        return _chat(body["choices"])
    if isinstance(body.get("output"), list):
        return _responses(body["output"])
    if body.get("type") == "message" and isinstance(body.get("content"), list):
        return _messages(body["content"])
    return None


def error_of(body: Any) -> str | None:
    """The message of an ``error`` object body (OpenAI's and Anthropic's shape), else None."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        return message
    if isinstance(error, str):
        return error
    return None
