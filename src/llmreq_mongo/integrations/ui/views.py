"""What the pages show of a call's outcome: the one place that reads the response side.

A record's ``response`` (:class:`~llmreq_mongo.LLMResponse`) is read here
into text ready to show: the model that answered, the tokens, the latency
and time to first token, the status, the error, and the answer itself (see
:mod:`.turns`). Anything not recorded shows as an em dash, never as a zero,
so the pages stay honest about what was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmreq_mongo._capture import LLMResponse

from .turns import Part, response_parts

__all__ = [
    "DASH",
    "NO_USAGE",
    "CallFigures",
    "UsageFigures",
    "call_figures",
    "count_text",
    "millis_text",
    "payload_model",
    "response_payload",
]

#: What a page shows for a figure that was not recorded.
DASH = "\u2014"


@dataclass(frozen=True)
class CallFigures:
    """One call's outcome, as text ready to show (:data:`DASH` when not recorded).

    Attributes:
        model: the model that answered (the response's), else the one asked for.
        tokens_in: input tokens (``usage.input_tokens``).
        tokens_out: output tokens (``usage.output_tokens``).
        latency: from the request's arrival to the last byte.
        ttft: to the first byte of a stream.
        status: the HTTP status, or what stands for it (``unreachable``).
        error: what went wrong.
        finish: why generation stopped (the finish reasons, joined).
        recorded: whether the record carries a response at all.
        failed: whether the call failed (an error, or a status of 400 or more).
        bad_status: whether the status itself says so (400 or more, or no
            response at all); a stream cut after a 200 failed with a good status.
        stream: whether the response was streamed.
        truncated: whether the body was over the capture limit and not kept.
        parts: the answer (text, tool calls, reasoning); None when the body
            holds no answer of a known shape (or there is no body).
        body: the response body, for a page to show as JSON when ``parts`` is None.
    """

    model: str
    tokens_in: str
    tokens_out: str
    latency: str
    ttft: str
    status: str
    error: str
    finish: str
    recorded: bool
    failed: bool = False
    bad_status: bool = False
    stream: bool = False
    truncated: bool = False
    parts: tuple[Part, ...] | None = None
    body: Any = None


@dataclass(frozen=True)
class UsageFigures:
    """Totals over many calls (a client's, a session's), as text ready to show.

    Attributes:
        tokens_in: input tokens in all.
        tokens_out: output tokens in all.
        errors: calls that ended in an error.
        latency_p50: median latency.
        latency_p95: 95th percentile latency.
        recorded: whether any of the calls carried a response.
    """

    tokens_in: str = DASH
    tokens_out: str = DASH
    errors: str = DASH
    latency_p50: str = DASH
    latency_p95: str = DASH
    recorded: bool = False


#: The totals of calls none of which carries a response: every figure unknown.
NO_USAGE = UsageFigures()


def count_text(value: Any) -> str:
    """A count with thousands separators, or :data:`DASH` when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return DASH
    return f"{value:,}"


def millis_text(value: Any) -> str:
    """A duration in milliseconds as text (``812 ms``, ``15.4 s``), or :data:`DASH`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return DASH
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _text(value: Any) -> str:
    return value if isinstance(value, str) and value else DASH


def payload_model(payload: Any) -> str:
    """The ``model`` a request payload names, or :data:`DASH`."""
    return _text(payload.get("model")) if isinstance(payload, dict) else DASH


def _status(response: LLMResponse) -> str:
    if response.status is not None:
        return str(response.status)
    # No HTTP status: the upstream was never reached, or the call did not go over HTTP.
    return "no response" if response.error else DASH


def call_figures(record: Any) -> CallFigures:
    """What ``record`` says about its call's outcome; :data:`DASH` for what it lacks."""
    asked = payload_model(getattr(record, "request", None))
    response = getattr(record, "response", None)
    if not isinstance(response, LLMResponse):
        return CallFigures(asked, DASH, DASH, DASH, DASH, DASH, DASH, DASH, recorded=False)
    usage = response.usage
    return CallFigures(
        model=_text(response.model) if response.model else asked,
        tokens_in=count_text(usage.input_tokens if usage else None),
        tokens_out=count_text(usage.output_tokens if usage else None),
        latency=millis_text(response.latency_ms),
        ttft=millis_text(response.ttft_ms),
        status=_status(response),
        error=_text(response.error),
        finish=", ".join(response.finish_reasons) or DASH,
        recorded=True,
        failed=response.error is not None or (response.status or 0) >= 400,
        bad_status=(response.status or 0) >= 400
        or (response.status is None and response.error is not None),
        stream=response.stream,
        truncated=response.truncated,
        parts=response_parts(response.body),
        body=response.body,
    )


def response_payload(record: Any) -> Any:
    """The record's response as JSON-ready data (every field), or None when none was recorded."""
    response = getattr(record, "response", None)
    if not isinstance(response, LLMResponse):
        return None
    return response.model_dump(mode="json")
