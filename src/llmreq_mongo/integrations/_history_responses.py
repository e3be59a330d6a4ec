"""What the history API says of a call's response: :class:`ResponseOut` and :class:`TokenUsageOut`.

They mirror :class:`~llmreq_mongo.LLMResponse` and
:class:`~llmreq_mongo.TokenUsage` field for field, so the OpenAPI document
describes every field with its type, and a count the provider did not
report stays null (never 0).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmreq_mongo._capture import LLMResponse

from ._instant import Instant

__all__ = ["ResponseOut", "TokenUsageOut", "response_out"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenUsageOut(_Out):
    """The tokens one call used, as the provider reported them (null: not reported)."""

    input_tokens: int | None = Field(description="input tokens, cached input included")
    output_tokens: int | None = Field(description="output tokens, reasoning included")
    total_tokens: int | None
    cache_read_input_tokens: int | None = Field(description="part of input_tokens")
    cache_creation_input_tokens: int | None = Field(description="part of input_tokens")
    reasoning_output_tokens: int | None = Field(description="part of output_tokens")


class ResponseOut(_Out):
    """What came back from one call."""

    status: int | None = Field(description="the HTTP status, when the call went over HTTP")
    body: Any = Field(
        description="the response JSON (for a stream, the assembled equivalent), or null"
    )
    model: str | None = Field(description="the model the provider says answered")
    response_id: str | None = Field(description="the provider's id for the response, as data")
    finish_reasons: list[str] = Field(description="why generation stopped, one per choice")
    usage: TokenUsageOut | None = Field(description="null when the provider reported none")
    error: str | None = Field(description="what went wrong when there is no usable response")
    stream: bool
    latency_ms: float = Field(description="from the request's arrival to the last byte")
    ttft_ms: float | None = Field(description="to the first body byte of a stream")
    completed_at: Instant
    truncated: bool = Field(description="the body was over the capture limit and not kept")


def response_out(response: LLMResponse | None) -> ResponseOut | None:
    """The API's form of a record's response (None stays None)."""
    if response is None:
        return None
    usage = response.usage
    return ResponseOut(
        status=response.status,
        body=response.body,
        model=response.model,
        response_id=response.response_id,
        finish_reasons=list(response.finish_reasons),
        usage=None if usage is None else TokenUsageOut(**usage.model_dump()),
        error=response.error,
        stream=response.stream,
        latency_ms=response.latency_ms,
        ttft_ms=response.ttft_ms,
        completed_at=response.completed_at,
        truncated=response.truncated,
    )
