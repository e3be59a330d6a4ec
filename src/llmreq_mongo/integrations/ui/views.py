"""What the pages show of a call's outcome: the one place that reads the response side.

Records carry the request today; what came back (the response, its tokens,
its latency and status) is not part of :class:`~llmreq_mongo.LLMClientRequest`
yet. Every page reads those figures through this module only, which looks for
a ``response`` attribute on the record and shows an em dash for anything it
does not find, so the pages stay honest about what was recorded and need one
change here, not in every template, when the response side is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DASH",
    "NO_USAGE",
    "CallFigures",
    "UsageFigures",
    "call_figures",
    "payload_model",
    "response_payload",
]

#: What a page shows for a figure that was not recorded.
DASH = "\u2014"


@dataclass(frozen=True)
class CallFigures:
    """One call's outcome, as text ready to show (:data:`DASH` when not recorded).

    Attributes:
        model: the model the request asked for (from the request payload).
        tokens_in: prompt tokens.
        tokens_out: completion tokens.
        latency: time to the answer.
        status: how the call ended.
        error: the error the call ended with.
        recorded: whether the record carries a response at all.
    """

    model: str
    tokens_in: str
    tokens_out: str
    latency: str
    status: str
    error: str
    recorded: bool


@dataclass(frozen=True)
class UsageFigures:
    """Totals over many calls (a client's, a session's), as text ready to show.

    Attributes:
        tokens_in: prompt tokens in all.
        tokens_out: completion tokens in all.
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


def _pick(value: Any, name: str) -> Any:
    """``value[name]`` or ``value.name``, whichever exists; None otherwise."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _count(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return DASH
    return f"{value:,}"


def _millis(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return DASH
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _text(value: Any) -> str:
    return value if isinstance(value, str) and value else DASH


def payload_model(payload: Any) -> str:
    """The ``model`` a request payload names, or :data:`DASH`."""
    return _text(_pick(payload, "model")) if isinstance(payload, Mapping) else DASH


def call_figures(record: Any) -> CallFigures:
    """What ``record`` says about its call's outcome; :data:`DASH` for what it lacks."""
    model = payload_model(getattr(record, "request", None))
    response = getattr(record, "response", None)
    if response is None:
        return CallFigures(model, DASH, DASH, DASH, DASH, DASH, recorded=False)
    return CallFigures(
        model=model,
        tokens_in=_count(_pick(response, "tokens_in")),
        tokens_out=_count(_pick(response, "tokens_out")),
        latency=_millis(_pick(response, "latency_ms")),
        status=_text(_pick(response, "status")),
        error=_text(_pick(response, "error")),
        recorded=True,
    )


def response_payload(record: Any) -> Any:
    """The record's response as JSON-ready data, or None when none was recorded."""
    response = getattr(record, "response", None)
    if response is None:
        return None
    dump = getattr(response, "model_dump", None)
    return dump(mode="json") if callable(dump) else response
