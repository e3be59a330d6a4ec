"""Usage of each API mapped to the GenAI names: counted as reported, None when not reported."""

from __future__ import annotations

from typing import Any

import pytest

from llmreq_mongo._capture import (
    TokenUsage,
    usage_from_anthropic,
    usage_from_chat,
    usage_from_responses,
)


def test_chat_completions_usage() -> None:
    usage = usage_from_chat(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 128},
        }
    )
    assert usage == TokenUsage(
        input_tokens=1200,
        output_tokens=300,
        total_tokens=1500,
        cache_read_input_tokens=1024,
        cache_creation_input_tokens=64,
        reasoning_output_tokens=128,
    )


def test_responses_api_usage() -> None:
    usage = usage_from_responses(
        {
            "input_tokens": 50,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 8},
            "total_tokens": 70,
        }
    )
    assert usage == TokenUsage(
        input_tokens=50,
        output_tokens=20,
        total_tokens=70,
        cache_read_input_tokens=0,
        reasoning_output_tokens=8,
    )


def test_anthropic_input_counts_the_cached_input_and_total_is_the_sum() -> None:
    usage = usage_from_anthropic(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 300,
            "output_tokens": 90,
        }
    )
    assert usage == TokenUsage(
        input_tokens=2310,
        output_tokens=90,
        total_tokens=2400,
        cache_read_input_tokens=2000,
        cache_creation_input_tokens=300,
    )


def test_anthropic_without_cache_counts() -> None:
    usage = usage_from_anthropic({"input_tokens": 10, "output_tokens": 5})
    assert usage == TokenUsage(input_tokens=10, output_tokens=5, total_tokens=15)


def test_anthropic_without_output_has_no_total() -> None:
    usage = usage_from_anthropic({"input_tokens": 10, "cache_read_input_tokens": None})
    assert usage == TokenUsage(input_tokens=10)
    assert usage is not None and usage.total_tokens is None


@pytest.mark.parametrize("mapping", [usage_from_chat, usage_from_responses, usage_from_anthropic])
@pytest.mark.parametrize("usage", [None, {}, "12", [], {"prompt_tokens_details": {}}])
def test_no_usage_is_none_never_zero(mapping: Any, usage: Any) -> None:
    assert mapping(usage) is None


def test_a_count_not_reported_is_none_and_zero_stays_zero() -> None:
    usage = usage_from_chat({"prompt_tokens": 0, "completion_tokens": 7})
    assert usage == TokenUsage(input_tokens=0, output_tokens=7)
    assert usage is not None
    assert usage.total_tokens is None
    assert usage.cache_read_input_tokens is None
    assert usage.reasoning_output_tokens is None


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3", 2**64])
def test_a_count_that_is_not_a_non_negative_integer_is_not_reported(bad: Any) -> None:
    usage = usage_from_chat({"prompt_tokens": bad, "completion_tokens": 1})
    assert usage == TokenUsage(output_tokens=1)
