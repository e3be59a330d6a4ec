"""``LLMRequestLogger``: record the calls to chosen paths of any ASGI application.

The middleware sits in front of an ASGI application (Starlette, FastAPI, Litestar, Quart, a
bare ASGI callable) and, for the paths and methods it is given, reads the request body,
parses it as JSON and hands it to a :class:`~llmreq_mongo.Recorder` together with the
session key it finds in the request. The application receives the body exactly as the
client sent it, message by message.

With ``capture="response"`` (the default) the record also holds what came back: the
middleware watches what the application sends, passes every message on unchanged and at
once (a stream still reaches the client chunk by chunk), reads a bounded copy of the body,
and writes one record when the response ends (see :mod:`._asgi_response`). With
``capture="request"`` the record is queued as soon as the request body has arrived, and
the response is never touched.

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

import datetime as dt
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, Literal, TypeGuard

from llmreq_mongo._capture import DEFAULT_MAX_BYTES, LLMResponse
from llmreq_mongo._checks import a_type
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._queries import forget_vouched, vouch
from llmreq_mongo._recording.recorder import Recorder
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import InvalidInput

from ._asgi_checks import check_size, content_length, logged_path, methods_of, split_paths
from ._asgi_response import ResponseCapture
from ._asgi_types import ASGIApp as ASGIApp
from ._asgi_types import ClientSource as ClientSource
from ._asgi_types import Message as Message
from ._asgi_types import Receive as Receive
from ._asgi_types import RecorderSource as RecorderSource
from ._asgi_types import RequestLoggerStats as RequestLoggerStats
from ._asgi_types import Scope as Scope
from ._asgi_types import Send as Send
from ._asgi_types import SupportsRecord as SupportsRecord
from ._session_keys import (
    DEFAULT_SESSION_KEY_SOURCES as DEFAULT_SESSION_KEY_SOURCES,
)
from ._session_keys import NO_BODY as NO_BODY
from ._session_keys import SessionKeyFinder as SessionKeyFinder
from ._session_keys import parse_json_body as parse_json_body
from ._session_keys import parse_json_request

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

#: The OpenAI-compatible endpoints recorded when no ``paths`` are given.
DEFAULT_PATHS: tuple[str, ...] = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
)
_DEFAULT_MAX_BODY = 1024 * 1024
_CAPTURES = ("response", "request")


class LLMRequestLogger:
    """ASGI middleware that records the calls to chosen paths, with what came back.

    For each HTTP request whose method is in ``methods`` and whose path (the scope's
    ``path``) is one of ``paths`` (a string is an exact path, a compiled pattern must
    match the whole path), the body is read, up to ``max_body_bytes``, then replayed to
    the application message by message, byte-identical. A JSON body is recorded through
    ``recorder.record(llm_client, body, session_key=...)``. Requests to other paths or
    with other methods, and other scope types (websockets, lifespan), pass straight
    through: their bodies are never read.

    ``capture`` chooses what a record holds:

    - ``"response"`` (the default): the request and its response, in one record written
      when the response ends, with ``created_at`` the time the request arrived. Every
      message the application sends is passed on unchanged and at once; a copy of the
      body, up to ``max_response_bytes``, is read as JSON or as an event stream into an
      :class:`~llmreq_mongo.LLMResponse` (status, body, usage, latency, time to first
      chunk). A handler that raises, a client that disconnects, or an application that
      returns before the response ends is recorded with ``error`` and what was sent so
      far; the exception propagates unchanged.
    - ``"request"``: the request alone, queued as soon as its body has arrived; the
      response is never touched.

    A body over ``max_body_bytes`` (by its ``Content-Length`` or as it arrives) is passed
    on whole but not recorded; an empty or non-JSON body, or one announced by a malformed
    ``Content-Length``, is not recorded; each is counted and logged in one line. The
    session key is put in the scope's ``state`` (``llmreq_session_key``), which Starlette
    and FastAPI expose as ``request.state``, and the record's id (``llmreq_record_id``)
    once the record is queued: before the application runs with ``capture="request"``,
    after the response has ended with ``capture="response"``.

    Args:
        app: the ASGI application to wrap.
        recorder: a :class:`~llmreq_mongo.Recorder`, or a callable returning the one to
            use (or None while there is none yet), read on every request.
        llm_client: the saved :class:`~llmreq_mongo.LLMClient` the requests are recorded
            against, or a callable returning it (or None while there is none yet).
        capture: ``"response"`` or ``"request"``, as above.
        paths: exact paths (``str``) and whole-path patterns (``re.Pattern``).
        methods: the HTTP methods recorded.
        session_key_from: where to look for the session key, in order; see
            :class:`SessionKeyFinder`.
        max_body_bytes: the largest request body recorded.
        max_response_bytes: the most response-body bytes kept for parsing (4 MiB by
            default); past it the body is not kept and the response is recorded with
            ``truncated`` set, its status, usage and timings still read.
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
        capture: Literal["response", "request"] = "response",
        paths: Iterable[str | re.Pattern[str]] = DEFAULT_PATHS,
        methods: Iterable[str] = ("POST",),
        session_key_from: Sequence[str] = DEFAULT_SESSION_KEY_SOURCES,
        max_body_bytes: int = _DEFAULT_MAX_BODY,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
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
        if not isinstance(capture, str) or capture not in _CAPTURES:
            raise InvalidInput(
                f"capture must be 'response' (the request and what came back) or 'request' "
                f"(the request alone), got {capture!r}"
            )
        check_size("max_body_bytes", max_body_bytes)
        check_size("max_response_bytes", max_response_bytes)
        if stats is not None and not isinstance(stats, RequestLoggerStats):
            raise InvalidInput(f"stats must be a RequestLoggerStats, got {type(stats).__name__}")
        self.app = app
        self.stats = stats if stats is not None else RequestLoggerStats()
        self.capture: Literal["response", "request"] = capture
        self.max_body_bytes = max_body_bytes
        self.max_response_bytes = max_response_bytes
        self.session_keys = SessionKeyFinder(session_key_from)
        # Both are read on every request through a callable, decided here once.
        self._recorder: Callable[[], SupportsRecord | None] = (
            (lambda: recorder) if isinstance(recorder, SupportsRecord) else recorder
        )
        self._llm_client: Callable[[], LLMClient | None] = (
            (lambda: llm_client) if isinstance(llm_client, LLMClient) else llm_client
        )
        self._exact, self._patterns = split_paths(paths)
        self._methods = methods_of(methods)

    def matches(self, scope: Scope) -> bool:
        """Whether the body of this request is to be recorded."""
        if scope.get("type") != "http" or scope.get("method") not in self._methods:
            return False
        path = scope.get("path", "")
        return path in self._exact or any(p.fullmatch(path) for p in self._patterns)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped application, recording the call when the request matches."""
        if not self.matches(scope):
            await self.app(scope, receive, send)
            return
        # The call's times are measured from here, before the body is read.
        started = time.perf_counter()
        # The record's created_at, in the response mode: the arrival, not the body's end.
        arrived = now_ms() if self.capture == "response" else None
        self.stats.seen += 1
        try:
            declared = content_length(scope)
        except ValueError as exc:
            # The body cannot be trusted to be what the header says: like a body that is
            # not JSON, it is passed on untouched and not recorded.
            self.stats.skipped_not_json += 1
            logger.warning(
                "llmreq: not recording %s %s: %s",
                scope.get("method"),
                logged_path(scope.get("path")),
                exc,
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

        call: _Call | None = None
        if outcome == "complete":
            body = b"".join(m.get("body", b"") for m in buffered)
            call = self._prepare(scope, body, arrived)
        elif outcome == "too_large":
            self._skip_too_large(scope, size)
        else:
            self.stats.skipped_incomplete += 1
        if call is not None and self.capture == "request":
            self._submit(scope, call, None)
            call = None

        async def replay() -> Message:
            # The application reads exactly the messages the server sent, then
            # the live stream (the rest of an oversized body, http.disconnect).
            if buffered:
                return buffered.popleft()
            message = await receive()
            if capture is not None and message.get("type") == "http.disconnect":
                capture.disconnected = True
            return message

        if call is None:
            capture = None
            await self.app(scope, replay, send)
            return
        pending = call
        capture = ResponseCapture(
            send,
            path=scope.get("path"),
            started=started,
            max_bytes=self.max_response_bytes,
            on_end=lambda response, failed: self._submit(scope, pending, response, failed),
        )
        await capture.run(self.app, scope, replay)

    def _prepare(self, scope: Scope, body: bytes, arrived: dt.datetime | None) -> _Call | None:
        """What a record of this request needs, or None (counted and logged) if it cannot be."""
        try:
            payload, plain = parse_json_request(body)
        except ValueError as exc:
            self.stats.skipped_not_json += 1
            logger.warning(
                "llmreq: not recording %s %s: the body is not JSON (%s)",
                scope.get("method"),
                logged_path(scope.get("path")),
                exc,
            )
            return None
        try:
            session_key, ignored = self.session_keys.find(scope, payload)
            self.stats.session_keys_ignored += ignored
            recorder, llm_client = self._resolve_recorder(), self._resolve_client()
            call = _Call(payload, session_key, recorder, llm_client, arrived, plain=plain)
        except Exception as exc:  # recording must never fail the request
            self._record_error(scope, exc)
            return None
        state = scope.setdefault("state", {})
        if _is_state(state):
            state["llmreq_session_key"] = session_key
        return call

    def _submit(
        self, scope: Scope, call: _Call, response: LLMResponse | None, failed: bool = False
    ) -> None:
        """Hand the record to the recorder; any refusal is counted and logged, never raised."""
        if type(call.recorder) is not Recorder:
            forget_vouched()  # another recorder's code may change the payloads first
        elif call.plain:
            vouch(call.payload)  # decoded here, and seen by no code of the caller's
        try:
            if response is None:
                record_id = call.recorder.record(
                    call.llm_client, call.payload, session_key=call.session_key
                )
            else:
                completed = response.completed_at
                created = call.created_at or completed
                record_id = call.recorder.record(
                    call.llm_client,
                    call.payload,
                    session_key=call.session_key,
                    created_at=created,
                    # When the record was written; a clock set back meanwhile never
                    # makes it precede the arrival.
                    updated_at=max(created, completed),
                    response=response,
                )
        except Exception as exc:  # recording must never fail the request
            self._record_error(scope, exc)
            return
        finally:
            forget_vouched()  # taken by the record, or no longer wanted
        self.stats.recorded += 1
        if failed:
            self.stats.call_errors += 1
        state = scope.get("state")
        if _is_state(state):
            state["llmreq_record_id"] = record_id

    def _record_error(self, scope: Scope, exc: Exception) -> None:
        self.stats.record_errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "llmreq: could not record %s %s: %s",
            scope.get("method"),
            logged_path(scope.get("path")),
            self.stats.last_error,
        )

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
            logged_path(scope.get("path")),
            size,
            self.max_body_bytes,
        )


def _is_state(state: object) -> TypeGuard[MutableMapping[str, Any]]:
    """Whether the scope's ``state`` can take our keys (a dict, in every server we know)."""
    # The exact type first: isinstance() against MutableMapping goes through ABCMeta.
    return type(state) is dict or isinstance(state, MutableMapping)


class _Call:
    """A request waiting for its response: what its record needs, read on arrival."""

    __slots__ = ("created_at", "llm_client", "payload", "plain", "recorder", "session_key")

    def __init__(
        self,
        payload: Any,
        session_key: str | None,
        recorder: SupportsRecord,
        llm_client: LLMClient,
        created_at: dt.datetime | None,
        *,
        plain: bool = False,
    ) -> None:
        self.payload = payload
        #: Whether the decoder vouched for the payload (parse_json_request).
        self.plain = plain
        self.session_key = session_key
        self.recorder = recorder
        self.llm_client = llm_client
        #: When the request arrived (None with capture="request": the recorder stamps it).
        self.created_at = created_at
