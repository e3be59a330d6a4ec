"""The capture layer: what came back from an LLM call, read as it passes.

- :mod:`.models`: :class:`LLMResponse` and :class:`TokenUsage`, and
  :func:`response_from`, which builds a response from a dict.
- :mod:`.usage`: each API's usage mapped to the OpenTelemetry GenAI names.
- :mod:`.sse`: an incremental, bounded Server-Sent Events parser.
- :mod:`.chat`, :mod:`.responses`, :mod:`.messages`: OpenAI chat
  completions, the OpenAI Responses API and Anthropic Messages, each as a
  JSON body and as a stream assembled into the equivalent body.
- :mod:`.bodies`: which API a JSON body comes from, and error bodies.
- :mod:`.parser`: :class:`ResponseParser`, the one entry point the ASGI
  middleware and the httpx transport use.
- :mod:`.stored`: a response in its stored form (the body escaped), and back.

It depends on the leaves and on the queries layer (for the payload checks),
and nothing below the documents depends on it.
"""

from .models import LLMResponse, TokenUsage, has_plain_body, response_from
from .outcome import api_for_path
from .parser import DEFAULT_MAX_BYTES, PARSE_BATCH, ResponseParser
from .sse import SSEEvent, SSEParser
from .stored import plain_response, response_document, stored_response, without_body
from .usage import usage_from_anthropic, usage_from_chat, usage_from_responses

__all__ = [
    "DEFAULT_MAX_BYTES",
    "PARSE_BATCH",
    "LLMResponse",
    "ResponseParser",
    "SSEEvent",
    "SSEParser",
    "TokenUsage",
    "api_for_path",
    "has_plain_body",
    "plain_response",
    "response_document",
    "response_from",
    "stored_response",
    "usage_from_anthropic",
    "usage_from_chat",
    "usage_from_responses",
    "without_body",
]
