"""A session read as a conversation: each call's messages, and which of them are new.

Chat clients resend the whole conversation with every call, so a session's
tenth request repeats the nine before it. :class:`Conversation` remembers the
previous call's messages and returns only what each call adds; the command
line's ``llmreq show`` and the history browser both read sessions through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatMessage", "Conversation", "Turn", "chat_messages", "message_text"]


@dataclass(frozen=True)
class ChatMessage:
    """One chat message, reduced to its role and its text."""

    role: str
    text: str


@dataclass(frozen=True)
class Turn:
    """What one call of a session shows.

    Attributes:
        messages: the call's new messages (all of them for the first call, or
            when the call does not continue the previous one); None when the
            payload is not a chat request.
        earlier: how many messages it repeats from the previous call.
    """

    messages: tuple[ChatMessage, ...] | None
    earlier: int = 0


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def message_text(content: Any) -> str:
    """The text of a message's ``content`` (a string, or a list of typed parts).

    Text parts are joined with a space; other typed parts (images, audio, ...)
    show as ``[type]``; anything else shows as compact JSON.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and "type" in part:
                parts.append(f"[{part['type']}]")
            else:
                parts.append(_compact(part))
        return " ".join(parts)
    return _compact(content)


def chat_messages(payload: Any) -> list[tuple[str, str]] | None:
    """``(role, text)`` for each message when ``payload`` is a chat request, else None.

    A chat request is an object with a non-empty ``messages`` list of objects
    that each carry a string ``role``.
    """
    if not isinstance(payload, dict):
        return None
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    out: list[tuple[str, str]] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return None
        out.append((message["role"], message_text(message.get("content"))))
    return out


class Conversation:
    """Reads a session's payloads in order and says what each one adds.

    Example::

        conversation = Conversation()
        async for req in LLMClientRequest.objects.for_session(key).iterator():
            turn = conversation.add(req.request)
    """

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: list[tuple[str, str]] = []

    def add(self, payload: Any) -> Turn:
        """The turn ``payload`` makes, given the calls added before it."""
        messages = chat_messages(payload)
        if messages is None:
            self._previous = []
            return Turn(None)
        earlier = _repeated(self._previous, messages)
        self._previous = messages
        shown = messages[earlier:]
        return Turn(tuple(ChatMessage(role, text) for role, text in shown), earlier)

    def answered(self, text: str) -> None:
        """Count the assistant's answer to the last call (``text``) as already shown.

        The next call of a chat resends that answer: it is then one of the
        earlier messages, not a new one. Nothing changes after a call that
        was not a chat request.
        """
        if self._previous:
            self._previous = [*self._previous, ("assistant", text)]


def _repeated(previous: list[tuple[str, str]], messages: list[tuple[str, str]]) -> int:
    """How many of ``messages`` repeat the previous call (they come first).

    A client resends the whole conversation (the previous messages are a
    prefix), or trims old turns: it resends the end of the previous messages,
    perhaps after keeping the first one (the system prompt). An overlap of a
    single message is not trusted unless it is the whole previous call, so a
    short reply such as "ok" said twice is not taken for a repeat.
    """
    if not previous:
        return 0
    if messages[: len(previous)] == previous:
        return len(previous)
    last = previous[-1]
    for start in (0, 1):
        if start == 1 and messages[0] != previous[0]:
            break
        for end in range(len(messages), start + 1, -1):
            size = end - start
            # The cheap test first: most candidate ends do not hold the last message.
            if (
                size <= len(previous)
                and messages[end - 1] == last
                and messages[start:end] == previous[-size:]
            ):
                return end
    return 0
