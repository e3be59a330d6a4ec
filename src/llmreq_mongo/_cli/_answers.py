"""How ``llmreq show`` prints a response under its request.

One summary line (status, model, latency, time to first token, tokens), then
what the assistant said and the tools it called, or the error::

    2026-03-02T09:15:04.120Z  support-bot  gpt-4o
      system    Be brief.
      user      How do I reset my password?
      ← 200  gpt-4o  412 ms  100 in / 20 out tokens
      assistant Use the sign-in page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from llmreq_mongo._capture import LLMResponse
from llmreq_mongo._reports.answers import answer_of, error_of

from ._durations import format_time
from ._render import dump_json

__all__ = ["answered_text", "millis", "response_json", "response_lines", "token_counts"]


def millis(value: float | None) -> str:
    """A duration in milliseconds, for people: ``412 ms``, ``3.5 ms``, ``1,204 ms``."""
    if value is None:
        return "-"
    return f"{value:,.1f} ms" if value < 10 else f"{value:,.0f} ms"


def token_counts(inp: int | None, out: int | None) -> str:
    """``100 in / 20 out tokens``; a count that was not reported shows as ``?``."""
    if inp is None and out is None:
        return "no usage reported"
    shown = ["?" if n is None else f"{n:,}" for n in (inp, out)]
    return f"{shown[0]} in / {shown[1]} out tokens"


def _summary(response: LLMResponse) -> str:
    parts: list[str] = []
    if response.status is not None:
        parts.append(str(response.status))
    if response.model is not None:
        parts.append(response.model)
    parts.append(millis(response.latency_ms))
    if response.ttft_ms is not None:
        parts.append(f"first byte {millis(response.ttft_ms)}")
    if response.stream:
        parts.append("streamed")
    usage = response.usage
    parts.append(
        token_counts(
            None if usage is None else usage.input_tokens,
            None if usage is None else usage.output_tokens,
        )
    )
    if response.truncated:
        parts.append("(body too large, not kept)")
    return "← " + "  ".join(parts)


def _labelled(label: str, text: str) -> str:
    pad = " " * 12
    lines = text.splitlines() or [""]
    return "\n".join([f"  {label:<9} {lines[0]}", *(pad + line for line in lines[1:])])


def response_lines(response: LLMResponse) -> list[str]:
    """The lines ``show`` prints for ``response`` (no markup: printed as they are)."""
    lines = ["  " + _summary(response)]
    if response.error is not None:
        lines.append(_labelled("error", response.error))
    body = response.body
    answer = answer_of(body)
    if answer is not None:
        if answer.text or not answer.tool_calls:
            lines.append(_labelled("assistant", answer.text))
        lines.extend(_labelled("tool call", f"{c.name}({c.arguments})") for c in answer.tool_calls)
    elif body is not None:
        message = error_of(body)
        if message is not None:
            if response.error is None:
                lines.append(_labelled("error", message))
        else:
            lines.append(_labelled("body", dump_json(body, indent=2)))
    return lines


def answered_text(response: LLMResponse) -> str | None:
    """The text the next call of the chat resends as the assistant's message, if any."""
    answer = answer_of(response.body)
    return None if answer is None else answer.text


def response_json(response: LLMResponse | None) -> dict[str, Any] | None:
    """A response as ``show --json`` prints it: every field, times in UTC with ``Z``."""
    if response is None:
        return None
    fields = response.model_dump()
    completed = fields.get("completed_at")
    if isinstance(completed, dt.datetime):
        fields["completed_at"] = format_time(completed)
    return fields
