"""Reading calls as a conversation: the request's messages and the response's answer.

Three APIs are understood on both sides: OpenAI chat completions
(``messages``; ``choices[i].message`` with its ``tool_calls``), the OpenAI
Responses API (``instructions`` and ``input``; ``output`` items: messages,
``function_call`` items, reasoning summaries) and Anthropic Messages
(``system`` and ``messages`` of content blocks; ``content`` blocks of
``text``, ``tool_use`` and ``thinking``). A request is turned into plain
``{"role", "content"}`` messages for
:class:`~llmreq_mongo._reports.conversation.Conversation`; a response body
into :class:`Part` values for the template.

A tool call reads the same on both sides, ``name(arguments)``, so that the
assistant message a client sends back (the previous answer) is recognised as
the answer already shown, not as a new message.

Everything here only reads: a value of an unexpected shape is shown as
compact JSON or left out, never trusted. The text and tool calls of an
answer are read as ``llmreq show`` reads them
(:mod:`llmreq_mongo._reports.answers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from llmreq_mongo._reports.answers import answer_of
from llmreq_mongo._reports.conversation import message_text

__all__ = ["Part", "answer_text", "chat_view", "response_parts"]

PartKind = Literal["text", "tool_call", "thinking", "refusal"]


@dataclass(frozen=True)
class Part:
    """One piece of an answer.

    Attributes:
        kind: ``text``, ``tool_call``, ``thinking`` (a reasoning summary) or ``refusal``.
        text: the text; for a tool call, its arguments (pretty JSON when they parse).
        name: the tool's name, for a tool call.
        call: the tool call as one line, ``name(arguments)``, as a request repeats it.
        fields: for a tool call whose arguments are an object of plain values
            (text, numbers, booleans), each name with its value as text, so
            that code or a multi-line text reads as written; else empty.
    """

    kind: PartKind
    text: str
    name: str = ""
    call: str = ""
    fields: tuple[tuple[str, str], ...] = ()


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _call_line(name: Any, arguments: Any) -> str:
    """A tool call as one line: ``run_python({"code":"print(1)"})``."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return f"{name}({arguments})"
    return f"{name}({_compact(arguments)})"


def _tool_part(name: Any, arguments: Any) -> Part:
    shown = arguments
    if isinstance(arguments, str):
        try:
            shown = json.loads(arguments)
        except ValueError:
            shown = None
    text = arguments if shown is None else json.dumps(shown, indent=2, ensure_ascii=False)
    label = name if isinstance(name, str) else _compact(name)
    fields: tuple[tuple[str, str], ...] = ()
    if isinstance(shown, dict) and all(
        isinstance(v, (str, int, float, bool)) for v in shown.values()
    ):
        fields = tuple(
            (key, value if isinstance(value, str) else _compact(value))
            for key, value in shown.items()
        )
    return Part("tool_call", str(text), label, _call_line(label, arguments), fields)


# -- requests ---------------------------------------------------------------------------------


def _blocks_text(content: Any) -> tuple[str, str | None]:
    """An Anthropic message's content as text, and ``"tool"`` when it holds tool results."""
    if not isinstance(content, list):
        return message_text(content), None
    parts: list[str] = []
    role = None
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use":
            parts.append("\u2192 " + _call_line(block.get("name"), block.get("input")))
        elif kind == "tool_result":
            role = "tool"
            parts.append(message_text(block.get("content")))
        else:
            parts.append(message_text([block]))
    return "\n".join(p for p in parts if p), role


def _message(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        return None
    role = message["role"]
    text, blocks_role = _blocks_text(message.get("content"))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                line = _call_line(function.get("name"), function.get("arguments"))
                text = "\n".join(t for t in (text, "\u2192 " + line) if t)
    if role == "user" and blocks_role is not None:
        role = blocks_role
    return {"role": role, "content": text}


def chat_view(payload: Any) -> Any:
    """``payload`` as plain chat messages, whichever API it speaks; else unchanged.

    Anthropic's ``system`` and the Responses API's ``instructions`` become a
    system message first; ``input`` (a string, or a list of messages) the
    messages after it; content blocks and tool calls become text.
    """
    if not isinstance(payload, dict):
        return payload
    messages = payload.get("messages")
    source: Any
    if isinstance(messages, list):
        source = messages
    elif isinstance(payload.get("input"), str):
        source = [{"role": "user", "content": payload["input"]}]
    elif isinstance(payload.get("input"), list):
        source = payload["input"]
    else:
        return payload
    system = payload.get("system", payload.get("instructions"))
    out: list[dict[str, Any]] = []
    if system is not None:
        text, _ = _blocks_text(system)
        out.append({"role": "system", "content": text})
    for message in source:
        plain = _message(message)
        if plain is None:
            return payload
        out.append(plain)
    return {"messages": out} if out else payload


# -- responses --------------------------------------------------------------------------------


def _thinking_and_refusals(body: dict[str, Any]) -> tuple[list[Part], list[Part]]:
    """What :func:`~llmreq_mongo._reports.answers.answer_of` leaves out: reasoning
    (Anthropic's ``thinking`` blocks, the Responses API's summaries) and refusals."""
    thinking: list[Part] = []
    refusals: list[Part] = []
    for choice in body.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        refusal = message.get("refusal") if isinstance(message, dict) else None
        if isinstance(refusal, str) and refusal:
            refusals.append(Part("refusal", refusal))
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning":
            summary = [s.get("text") for s in item.get("summary") or [] if isinstance(s, dict)]
            text = "\n".join(t for t in summary if isinstance(t, str))
            if text:
                thinking.append(Part("thinking", text))
        for piece in item.get("content") or [] if item.get("type") == "message" else []:
            if isinstance(piece, dict) and piece.get("type") == "refusal":
                refusals.append(Part("refusal", message_text(piece.get("refusal"))))
    if body.get("type") == "message":
        for block in body.get("content") or []:
            if isinstance(block, dict) and isinstance(block.get("thinking"), str):
                thinking.append(Part("thinking", block["thinking"]))
    return thinking, refusals


def response_parts(body: Any) -> tuple[Part, ...] | None:
    """The answer in a response body: reasoning, refusals, text, tool calls; None if none.

    The text and tool calls are read by
    :func:`~llmreq_mongo._reports.answers.answer_of`, as ``llmreq show``
    reads them. An empty tuple is an answer with nothing in it (a stream
    cut before its first word); None is a body of no known shape, which the
    page shows as JSON.
    """
    answer = answer_of(body)
    if answer is None or not isinstance(body, dict):
        return None
    thinking, refusals = _thinking_and_refusals(body)
    parts = [*thinking, *refusals]
    if answer.text:
        parts.append(Part("text", answer.text))
    parts += [_tool_part(call.name, call.arguments) for call in answer.tool_calls]
    return tuple(parts)


def answer_text(parts: tuple[Part, ...]) -> str:
    """The answer as the next request repeats it: texts, then ``-> name(arguments)`` lines."""
    lines = [p.text for p in parts if p.kind == "text"]
    lines += ["\u2192 " + p.call for p in parts if p.kind == "tool_call"]
    return "\n".join(lines)
