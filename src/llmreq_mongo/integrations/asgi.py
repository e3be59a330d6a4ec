"""``LLMRequestLogger``: record the JSON bodies of chosen requests, in any ASGI application.

The middleware sits in front of an ASGI application (Starlette, FastAPI, Litestar, Quart, a
bare ASGI callable) and, for the paths and methods it is given, reads the request body,
parses it as JSON and hands it to a :class:`~llmreq_mongo.Recorder` together with the
session key it finds in the request. The application receives the body exactly as the
client sent it, message by message, and the response is never touched, so streaming
responses stream as before.

Recording never makes a request fail or wait on MongoDB: ``Recorder.record()`` only
validates and queues, and anything it raises (a refused payload, a full or stopped
recorder) is caught, counted in :class:`RequestLoggerStats` and logged in one line.

Example::

    from llmreq_mongo import Recorder
    from llmreq_mongo.integrations.asgi import LLMRequestLogger

    app = LLMRequestLogger(
        app,
        recorder=recorder,                  # a started Recorder, or a callable returning one
        llm_client=support_bot,             # a saved LLMClient, or a callable returning one
        paths=["/v1/chat/completions", re.compile(r"/v1/agents/[^/]+/run")],
    )

This module depends on nothing beyond the standard library and the core of the package.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeAlias, runtime_checkable

from bson import ObjectId

from llmreq_mongo._checks import a_type
from llmreq_mongo._documents import LLMClient
from llmreq_mongo.errors import InvalidInput

from ._session_keys import (
    DEFAULT_SESSION_KEY_SOURCES as DEFAULT_SESSION_KEY_SOURCES,
)
from ._session_keys import NO_BODY as NO_BODY
from ._session_keys import SessionKeyFinder as SessionKeyFinder
from ._session_keys import header_values
from ._session_keys import parse_json_body as parse_json_body

__all__ = [
    "ASGIApp",
    "ClientSource",
    "DEFAULT_PATHS",
    "DEFAULT_SESSION_KEY_SOURCES",
    "LLMRequestLogger",
    "Message",
    "NO_BODY",
    "Receive",
    "RecorderSource",
    "RequestLoggerStats",
    "Scope",
    "Send",
    "SessionKeyFinder",
    "SupportsRecord",
    "parse_json_body",
]

logger = logging.getLogger(__name__)

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

#: The OpenAI-compatible endpoints recorded when no ``paths`` are given.
DEFAULT_PATHS: tuple[str, ...] = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
)
_DEFAULT_MAX_BODY = 1024 * 1024


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
        recorded: bodies handed to the recorder.
        skipped_not_json: bodies that were empty or not JSON, or that a malformed
            ``Content-Length`` announced (not ASCII digits, or several different values).
        skipped_too_large: bodies over ``max_body_bytes`` (passed on, not recorded).
        skipped_incomplete: the client disconnected before the body ended.
        record_errors: bodies the recorder refused or could not take (an invalid payload,
            a full or stopped recorder, no recorder or client available yet).
        session_keys_ignored: session-key candidates that were not usable (not a string,
            or longer than 255 characters); the next source was tried.
        last_error: the last recording error, as ``"Type: message"``.
    """

    seen: int = 0
    recorded: int = 0
    skipped_not_json: int = 0
    skipped_too_large: int = 0
    skipped_incomplete: int = 0
    record_errors: int = 0
    session_keys_ignored: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, int | str | None]:
        """The counters as a plain dict (for a metrics or health endpoint)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class LLMRequestLogger:
    """ASGI middleware that records the JSON bodies of chosen requests.

    For each HTTP request whose method is in ``methods`` and whose path (the scope's
    ``path``) is one of ``paths`` (a string is an exact path, a compiled pattern must
    match the whole path), the body is read, up to ``max_body_bytes``, then replayed to
    the application message by message, byte-identical. A JSON body is recorded through
    ``recorder.record(llm_client, body, session_key=...)``. Requests to other paths or
    with other methods, and other scope types (websockets, lifespan), pass straight
    through: their bodies are never read.

    A body over ``max_body_bytes`` (by its ``Content-Length`` or as it arrives) is passed
    on whole but not recorded; an empty or non-JSON body, or one announced by a malformed
    ``Content-Length``, is not recorded; each is counted and logged in one line. After a
    body is recorded, the record's id and the session key are put in the scope's ``state``
    (``llmreq_record_id``, ``llmreq_session_key``), which Starlette and FastAPI expose as
    ``request.state``.

    Args:
        app: the ASGI application to wrap.
        recorder: a :class:`~llmreq_mongo.Recorder`, or a callable returning the one to
            use (or None while there is none yet), read on every request.
        llm_client: the saved :class:`~llmreq_mongo.LLMClient` the requests are recorded
            against, or a callable returning it (or None while there is none yet).
        paths: exact paths (``str``) and whole-path patterns (``re.Pattern``).
        methods: the HTTP methods recorded.
        session_key_from: where to look for the session key, in order; see
            :class:`SessionKeyFinder`.
        max_body_bytes: the largest body recorded.
        stats: the counters to update; a new :class:`RequestLoggerStats` when None. Pass
            your own to read them when a framework builds the middleware for you.

    Raises:
        InvalidInput: an option is invalid (checked here, not on the first request).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        recorder: RecorderSource,
        llm_client: ClientSource,
        paths: Iterable[str | re.Pattern[str]] = DEFAULT_PATHS,
        methods: Iterable[str] = ("POST",),
        session_key_from: Sequence[str] = DEFAULT_SESSION_KEY_SOURCES,
        max_body_bytes: int = _DEFAULT_MAX_BODY,
        stats: RequestLoggerStats | None = None,
    ) -> None:
        if not callable(app):
            raise InvalidInput(f"app must be an ASGI application, got {a_type(app)}")
        if not (isinstance(recorder, SupportsRecord) or callable(recorder)):
            raise InvalidInput(
                "recorder must be a llmreq_mongo.Recorder or a callable returning one, "
                f"got {a_type(recorder)}"
            )
        if isinstance(llm_client, LLMClient):
            if llm_client.id is None:
                raise InvalidInput(
                    f"LLMClient {llm_client.name!r} is not saved; create it first "
                    "(await LLMClient.objects.get_or_create(name=...))"
                )
        elif not callable(llm_client):
            raise InvalidInput(
                "llm_client must be a saved LLMClient or a callable returning one, "
                f"got {a_type(llm_client)}"
            )
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
            raise InvalidInput(f"max_body_bytes must be an integer, got {max_body_bytes!r}")
        if max_body_bytes <= 0:
            raise InvalidInput(f"max_body_bytes must be positive, got {max_body_bytes}")
        if stats is not None and not isinstance(stats, RequestLoggerStats):
            raise InvalidInput(f"stats must be a RequestLoggerStats, got {type(stats).__name__}")
        self.app = app
        self.stats = stats if stats is not None else RequestLoggerStats()
        self.max_body_bytes = max_body_bytes
        self.session_keys = SessionKeyFinder(session_key_from)
        # Both are read on every request through a callable, decided here once.
        self._recorder: Callable[[], SupportsRecord | None] = (
            (lambda: recorder) if isinstance(recorder, SupportsRecord) else recorder
        )
        self._llm_client: Callable[[], LLMClient | None] = (
            (lambda: llm_client) if isinstance(llm_client, LLMClient) else llm_client
        )
        self._exact, self._patterns = _split_paths(paths)
        self._methods = _methods(methods)

    def matches(self, scope: Scope) -> bool:
        """Whether the body of this request is to be recorded."""
        if scope.get("type") != "http" or scope.get("method") not in self._methods:
            return False
        path = scope.get("path", "")
        return path in self._exact or any(p.fullmatch(path) for p in self._patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped application, recording the body when the request matches."""
        if not self.matches(scope):
            await self.app(scope, receive, send)
            return
        self.stats.seen += 1
        try:
            declared = _content_length(scope)
        except ValueError as exc:
            # The body cannot be trusted to be what the header says: like a body that is
            # not JSON, it is passed on untouched and not recorded.
            self.stats.skipped_not_json += 1
            logger.warning(
                "llmreq: not recording %s %s: %s", scope.get("method"), scope.get("path"), exc
            )
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > self.max_body_bytes:
            self._skip_too_large(scope, declared)
            await self.app(scope, receive, send)
            return
        buffered: deque[Message] = deque()
        size = 0
        outcome = "complete"
        while True:
            message = await receive()
            buffered.append(message)
            if message.get("type") != "http.request":
                outcome = "incomplete"  # http.disconnect before the end of the body
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                outcome = "too_large"
                break
            if not message.get("more_body", False):
                break

        if outcome == "complete":
            body = b"".join(m.get("body", b"") for m in buffered)
            self._record(scope, body)
        elif outcome == "too_large":
            self._skip_too_large(scope, size)
        else:
            self.stats.skipped_incomplete += 1

        async def replay() -> Message:
            # The application reads exactly the messages the server sent, then
            # the live stream (the rest of an oversized body, http.disconnect).
            if buffered:
                return buffered.popleft()
            return await receive()

        await self.app(scope, replay, send)

    def _record(self, scope: Scope, body: bytes) -> None:
        try:
            payload = parse_json_body(body)
        except ValueError as exc:
            self.stats.skipped_not_json += 1
            logger.warning(
                "llmreq: not recording %s %s: the body is not JSON (%s)",
                scope.get("method"),
                scope.get("path"),
                exc,
            )
            return
        try:
            session_key, ignored = self.session_keys.find(scope, payload)
            self.stats.session_keys_ignored += ignored
            recorder = self._resolve_recorder()
            llm_client = self._resolve_client()
            record_id = recorder.record(llm_client, payload, session_key=session_key)
        except Exception as exc:  # recording must never fail the request
            self.stats.record_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "llmreq: could not record %s %s: %s",
                scope.get("method"),
                scope.get("path"),
                self.stats.last_error,
            )
            return
        self.stats.recorded += 1
        state = scope.setdefault("state", {})
        if isinstance(state, MutableMapping):
            state["llmreq_record_id"] = record_id
            state["llmreq_session_key"] = session_key

    def _resolve_recorder(self) -> SupportsRecord:
        recorder = self._recorder()
        if recorder is None:
            raise LookupError("no recorder is available yet (has the application started?)")
        return recorder

    def _resolve_client(self) -> LLMClient:
        client = self._llm_client()
        if client is None:
            raise LookupError("no LLM client is available yet (has the application started?)")
        return client

    def _skip_too_large(self, scope: Scope, size: int) -> None:
        self.stats.skipped_too_large += 1
        logger.warning(
            "llmreq: not recording %s %s: the body (%d bytes or more) is over "
            "max_body_bytes=%d; it was passed on unrecorded",
            scope.get("method"),
            scope.get("path"),
            size,
            self.max_body_bytes,
        )


def _split_paths(
    paths: Iterable[str | re.Pattern[str]],
) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    if isinstance(paths, (str, re.Pattern)):
        raise InvalidInput(
            f"paths takes a sequence of paths and patterns, got the single value {paths!r}; "
            "wrap it in a list"
        )
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for path in paths:
        if isinstance(path, re.Pattern):
            if not isinstance(path.pattern, str):
                raise InvalidInput(f"path pattern {path!r} must be a str pattern, not bytes")
            patterns.append(path)
        elif isinstance(path, str) and path.startswith("/"):
            exact.add(path)
        else:
            raise InvalidInput(
                f"path {path!r} is neither an absolute path ('/v1/chat/completions') "
                "nor a compiled pattern (re.compile(r'/v1/.+'))"
            )
    if not exact and not patterns:
        raise InvalidInput("paths is empty: give at least one path or pattern to record")
    return frozenset(exact), tuple(patterns)


def _methods(methods: Iterable[str]) -> frozenset[str]:
    if isinstance(methods, str):
        raise InvalidInput(f"methods takes a sequence such as ('POST',), got {methods!r}")
    result = set()
    for method in methods:
        if not isinstance(method, str) or not method.isalpha():
            raise InvalidInput(f"{method!r} is not an HTTP method")
        result.add(method.upper())
    if not result:
        raise InvalidInput("methods is empty: give at least one HTTP method, such as 'POST'")
    return frozenset(result)


_ASCII_DIGITS = re.compile(r"[0-9]+")
# Digits beyond this many announce more than any body this middleware reads; int() of
# thousands of digits is also refused by Python itself.
_MAX_LENGTH_DIGITS = 18
_HUGE_LENGTH: int = 10**_MAX_LENGTH_DIGITS


def _content_length(scope: Scope) -> int | None:
    """The declared body size: None without the header.

    Raises:
        ValueError: the header is not a number of bytes in ASCII digits (``str.isdigit``
            also accepts ``"²"`` and other scripts' digits, which ``int`` then refuses or
            reads as another number), or is repeated with different values.
    """
    values = {value.strip(" \t") for value in header_values(scope, "content-length")}
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"the Content-Length header has several values {sorted(values)!r}")
    (text,) = values
    if not _ASCII_DIGITS.fullmatch(text):
        raise ValueError(f"the Content-Length header {text!r} is not a number of bytes")
    if len(text) > _MAX_LENGTH_DIGITS:
        return _HUGE_LENGTH
    return int(text)
