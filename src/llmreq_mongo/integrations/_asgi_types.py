"""The public types of the ASGI integration: the ASGI callables, what it needs of a
recorder, where the recorder and client come from, and the middleware's counters.

Re-exported by :mod:`llmreq_mongo.integrations.asgi`, which is where to import them from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeAlias, runtime_checkable

from bson import ObjectId

from llmreq_mongo._capture import LLMResponse
from llmreq_mongo._documents import LLMClient

__all__ = [
    "ASGIApp",
    "ClientSource",
    "Message",
    "Receive",
    "RecorderSource",
    "RequestLoggerStats",
    "Scope",
    "Send",
    "SupportsRecord",
]

#: An ASGI connection scope.
Scope: TypeAlias = MutableMapping[str, Any]
#: An ASGI event message.
Message: TypeAlias = MutableMapping[str, Any]
#: The ASGI ``receive`` callable.
Receive: TypeAlias = Callable[[], Awaitable[Message]]
#: The ASGI ``send`` callable.
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


@runtime_checkable
class SupportsRecord(Protocol):
    """What the middleware needs of a recorder: :meth:`llmreq_mongo.Recorder.record`."""

    def record(
        self,
        llm_client: Any,
        request: Any,
        *,
        session_key: str | None = None,
        is_aggregation: bool = False,
        created_at: dt.datetime | None = None,
        updated_at: dt.datetime | None = None,
        response: LLMResponse | None = None,
    ) -> ObjectId:
        """Validate and queue one record, without I/O; return its id."""
        ...


RecorderSource: TypeAlias = SupportsRecord | Callable[[], SupportsRecord | None]
ClientSource: TypeAlias = LLMClient | Callable[[], LLMClient | None]


@dataclass
class RequestLoggerStats:
    """What the middleware did, counted since it was created.

    Attributes:
        seen: requests to a recorded path with a recorded method.
        recorded: records handed to the recorder (with ``capture="response"``, once the
            response has ended).
        skipped_not_json: bodies that were empty or not JSON, or that a malformed
            ``Content-Length`` announced (not ASCII digits, or several different values).
        skipped_too_large: bodies over ``max_body_bytes`` (passed on, not recorded).
        skipped_incomplete: the client disconnected before the body ended.
        record_errors: bodies the recorder refused or could not take (an invalid payload,
            a full or stopped recorder, no recorder or client available yet).
        session_keys_ignored: session-key candidates that were not usable (not a string,
            or longer than 255 characters); the next source was tried.
        call_errors: calls recorded with an ``error`` the middleware saw: the handler
            raised, the client disconnected, or the response never ended (an error
            status or error body from the application is a response, not counted here).
        last_error: the last recording error, as ``"Type: message"``.
    """

    seen: int = 0
    recorded: int = 0
    skipped_not_json: int = 0
    skipped_too_large: int = 0
    skipped_incomplete: int = 0
    record_errors: int = 0
    session_keys_ignored: int = 0
    call_errors: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        """The counters as a plain dict (for a metrics or health endpoint)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
