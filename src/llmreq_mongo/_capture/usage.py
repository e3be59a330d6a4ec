"""Token usage as each API reports it, mapped to :class:`TokenUsage`.

The target names follow OpenTelemetry's GenAI conventions
(``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
``gen_ai.usage.cache_read.input_tokens``,
``gen_ai.usage.cache_creation.input_tokens``,
``gen_ai.usage.reasoning.output_tokens``). As those conventions ask,
``input_tokens`` counts every input token, cached ones included:

- OpenAI (chat completions and the Responses API) reports it so already:
  ``cached_tokens`` (read from the cache) and ``cache_write_tokens``
  (written to it), in ``prompt_tokens_details`` / ``input_tokens_details``,
  are parts of ``prompt_tokens`` / ``input_tokens``.
- Anthropic reports three disjoint counts, so ``input_tokens`` here is
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``
  (the absent ones counting for nothing), and ``total_tokens``, which
  Anthropic never reports, is that input plus ``output_tokens`` when both are
  known.

A count the provider did not report, or reported as something that is not a
non-negative integer, is None: never 0.
"""

from __future__ import annotations

from typing import Any

from llmreq_mongo._checks import INT64_MAX

from .models import TokenUsage, is_count, trusted_usage

__all__ = ["usage_from_anthropic", "usage_from_chat", "usage_from_responses"]


# The usage objects read here come from a JSON decoder: dicts, never another mapping
# (whose isinstance check, through ABCMeta, would cost more than the reading).


def _count(source: Any, key: str) -> int | None:
    value = source.get(key) if isinstance(source, dict) else None
    if is_count(value):
        return value
    return None


def _usage(counts: dict[str, int | None]) -> TokenUsage | None:
    if all(value is None for value in counts.values()):
        return None
    return trusted_usage(counts)


def _sum(*counts: int | None) -> int | None:
    """The sum of ``counts`` (None when the first is None), None past what a count holds."""
    if counts[0] is None:
        return None
    total = sum(count or 0 for count in counts)
    return total if total <= INT64_MAX else None


def usage_from_chat(usage: Any) -> TokenUsage | None:
    """Map an OpenAI chat completions ``usage`` object (None when there is none)."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details")
    return _usage(
        {
            "input_tokens": _count(usage, "prompt_tokens"),
            "output_tokens": _count(usage, "completion_tokens"),
            "total_tokens": _count(usage, "total_tokens"),
            "cache_read_input_tokens": _count(prompt, "cached_tokens"),
            "cache_creation_input_tokens": _count(prompt, "cache_write_tokens"),
            "reasoning_output_tokens": _count(
                usage.get("completion_tokens_details"), "reasoning_tokens"
            ),
        }
    )


def usage_from_responses(usage: Any) -> TokenUsage | None:
    """Map an OpenAI Responses API ``usage`` object (None when there is none)."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    return _usage(
        {
            "input_tokens": _count(usage, "input_tokens"),
            "output_tokens": _count(usage, "output_tokens"),
            "total_tokens": _count(usage, "total_tokens"),
            "cache_read_input_tokens": _count(details, "cached_tokens"),
            "cache_creation_input_tokens": _count(details, "cache_write_tokens"),
            "reasoning_output_tokens": _count(
                usage.get("output_tokens_details"), "reasoning_tokens"
            ),
        }
    )


def usage_from_anthropic(usage: Any) -> TokenUsage | None:
    """Map an Anthropic Messages ``usage`` object (None when there is none).

    See the module docstring for what ``input_tokens`` and ``total_tokens``
    are here.
    """
    if not isinstance(usage, dict):
        return None
    uncached = _count(usage, "input_tokens")
    read = _count(usage, "cache_read_input_tokens")
    created = _count(usage, "cache_creation_input_tokens")
    output = _count(usage, "output_tokens")
    total_input = _sum(uncached, read, created)
    total = None if output is None else _sum(total_input, output)
    return _usage(
        {
            "input_tokens": total_input,
            "output_tokens": output,
            "total_tokens": total,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": created,
            "reasoning_output_tokens": None,
        }
    )
