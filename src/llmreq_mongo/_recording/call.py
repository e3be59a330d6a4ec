"""``recorder.call(...)``: record a call whose response comes later, timed by the recorder.

Example::

    async with recorder.call(client, payload, session_key="s1") as call:
        completion = await llm.chat.completions.create(**payload)
        call.respond(status=200, body=completion.model_dump(mode="json"))

:meth:`Recorder.call <llmreq_mongo.Recorder.call>` checks the request at once,
on the caller's path, with the errors of ``record()``; it stamps
``created_at`` and starts the clock. What came back is handed over in one of
two ways, or not at all:

- ``call.respond(...)``: an :class:`~llmreq_mongo.LLMResponse`, a dict of its
  fields, or the fields as keywords (``status=200, body=..., usage=...``),
  checked at once. The fields not given that the call can measure are
  measured: ``latency_ms`` and ``completed_at`` at the end, ``ttft_ms`` from
  ``first_token()``.
- ``call.receive(status=..., content_type=..., path=...)``, then
  ``call.feed(chunk)`` for every raw body chunk: the chunks are read as they
  come (a JSON body, or the event stream of OpenAI chat completions, the
  Responses API or Anthropic Messages) into the assembled response, its
  usage counted once. A stream's first chunk marks ``ttft_ms``.

The call ends when the block ends (or at ``await call.finish()``, for code
that cannot use a block). Its record, one document holding the request and
the response, then goes through the recorder's queue as ``arecord()``'s
does: a full queue waits for room under ``on_full="block"``, drops under
``"drop"`` and raises ``RecorderFull`` under ``"raise"``; it is written once,
spilled when MongoDB is away, and ``flush()`` covers it once it has ended.

What is recorded, by how the call ended:

- with a response: that response, measured as above;
- without one: the timings alone (``latency_ms``, ``completed_at``, and
  ``ttft_ms`` if ``first_token()`` was called, with ``stream`` then true);
  ``status``, ``body`` and ``usage`` are None and ``error`` is None: the
  block did not fail;
- the block raised an ``Exception``: what was handed over, with ``error``
  naming the exception (``"httpx.ConnectError: ..."``); the exception goes on
  unchanged. Should the record itself be refused then (``RecorderFull``), it
  is logged: the block's exception is the one that propagates;
- cancelled (``CancelledError``), or interrupted (``KeyboardInterrupt``,
  ``SystemExit``): recorded with ``error`` ``"the call was cancelled"`` or
  ``"the call was interrupted (KeyboardInterrupt)"``, queued at once without
  waiting for room (past ``max_queue`` if need be, unless ``on_full`` is
  ``"drop"``: the record is in memory already, and a cancelled task must
  end promptly), and the exception goes on;
- still open when the recorder stops: ``stop()`` records it first, with
  ``error`` ``"the recorder stopped before the call ended"``, so that it is
  written or spilled with the rest. The block's own end then records nothing
  more: a call is recorded exactly once, whichever comes first.

Once a call has ended, ``respond()``, ``receive()``, ``feed()`` and
``first_token()`` are ignored (``ended`` tells): the record is already queued.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from bson import ObjectId

from llmreq_mongo._capture import DEFAULT_MAX_BYTES, LLMResponse, ResponseParser
from llmreq_mongo._checks import a_type
from llmreq_mongo._documents import ValidatedRequest, checked_response
from llmreq_mongo._queries import forget_vouched
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import InvalidInput, LLMReqError

from .queued import QueuedRecord, queued_record

__all__ = ["OpenCalls", "RecordedCall"]

_log = logging.getLogger("llmreq_mongo.recorder")

#: The most characters of an exception's text kept in ``error``.
_MAX_ERROR = 1000
_STOPPED = "the recorder stopped before the call ended"
_OPEN, _ENDED = "open", "ended"
#: The fields the call measures when the response given leaves them out.
_MEASURED = frozenset({"latency_ms", "completed_at", "ttft_ms"})


class OpenCalls:
    """The calls of one recorder that have not been queued yet.

    Args:
        admit: queues an ended call's record; ``force`` queues it even
            past the queue's bounds (at stop, or when the call was interrupted).
        room: waits until the queue has room for that many bytes, as
            ``arecord()`` does.
    """

    __slots__ = ("_admit", "_open", "_room")

    def __init__(
        self,
        admit: Callable[[QueuedRecord, bool], None],
        room: Callable[[int], Awaitable[None]],
    ) -> None:
        self._admit = admit
        self._room = room
        self._open: dict[RecordedCall, None] = {}  # ordered: stop() queues them as they came

    def __len__(self) -> int:
        return len(self._open)

    def open(
        self, checked: ValidatedRequest, record_id: ObjectId, created_at: dt.datetime
    ) -> RecordedCall:
        """A new call for the request ``checked``, stored as ``record_id``."""
        call = RecordedCall(checked, record_id, created_at, self)
        self._open[call] = None
        return call

    def close_all(self) -> None:
        """At stop: queue every call not yet queued, each as it stands."""
        calls, self._open = list(self._open), {}
        for call in calls:
            self._admit(call._final_document(_STOPPED), True)

    async def queue(
        self, call: RecordedCall, document: QueuedRecord, *, wait: bool, force: bool
    ) -> None:
        """Queue the ended ``call``, unless ``stop()`` queued it meanwhile.

        ``wait`` waits for room first, as ``arecord()`` does; a cancellation
        during that wait queues the record at once, and goes on. ``force``
        queues it even when the queue is full (an interrupted call);
        otherwise a full queue is left to ``on_full``, as in ``record()``.
        """
        if wait:
            try:
                await self._room(document.size)
            except asyncio.CancelledError:
                if self._take(call):
                    self._admit(document, True)
                raise
        if self._take(call):
            self._admit(document, force)

    def _take(self, call: RecordedCall) -> bool:
        """Whether ``call`` was still to be queued (it no longer is)."""
        if call in self._open:
            del self._open[call]
            return True
        return False


class RecordedCall:
    """One call being recorded: made by :meth:`Recorder.call <llmreq_mongo.Recorder.call>`.

    Use it as an async context manager (``async with recorder.call(...) as
    call:``); the module docstring of :mod:`llmreq_mongo._recording.call`
    says what is recorded for each way a call ends.

    Attributes:
        record_id: the id the record is stored under, known at once.
        created_at: when the call started (the record's ``created_at``).
    """

    __slots__ = (
        "_calls",
        "_checked",
        "_document",
        "_first",
        "_measure",
        "_parser",
        "_response",
        "_started",
        "_state",
        "_status",
        "created_at",
        "record_id",
    )

    def __init__(
        self,
        checked: ValidatedRequest,
        record_id: ObjectId,
        created_at: dt.datetime,
        calls: OpenCalls,
    ) -> None:
        self._started = time.perf_counter()
        self._checked = checked
        self._document: QueuedRecord | None = None
        self._calls = calls
        self._state = _OPEN
        self._first: float | None = None
        self._response: LLMResponse | None = None
        self._measure: frozenset[str] = _MEASURED
        self._parser: ResponseParser | None = None
        self._status: int | None = None
        self.record_id = record_id
        self.created_at = created_at

    @property
    def ended(self) -> bool:
        """Whether the call has ended (its record is queued, or being queued)."""
        return self._state != _OPEN

    # -- handing over what came back -------------------------------------------------

    def first_token(self) -> None:
        """Mark now as the time to first token (``ttft_ms``); only the first mark counts."""
        if self._first is None and self._state == _OPEN:
            self._first = time.perf_counter()

    def respond(
        self, response: LLMResponse | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> None:
        """Hand over the response: an ``LLMResponse``, a dict of its fields, or the fields.

        ``latency_ms``, ``completed_at`` and ``ttft_ms``, when not given, are
        measured by the call (at its end, and from ``first_token()``).

        Raises:
            InvalidInput: a field is refused, as by ``record(response=...)``
                (``InvalidPayload`` for the body); both a response and fields
                were given; or the call already has a response.
        """
        if self._state != _OPEN:
            return
        self._check_unanswered()
        if response is not None and fields:
            raise InvalidInput(
                "call.respond() takes a response or its fields as keywords, not both"
            )
        value: Any = fields if response is None else response
        if isinstance(value, LLMResponse):
            given = frozenset(value.model_fields_set)
        elif isinstance(value, Mapping):
            given = frozenset(k for k in value if isinstance(k, str))
            if "latency_ms" not in given:
                # A placeholder, replaced by the measured latency at the end.
                value = {**value, "latency_ms": 0.0}
        else:
            raise InvalidInput(
                f"response must be an LLMResponse or a dict of its fields, got {a_type(value)}"
            )
        self._response = checked_response(value)
        self._measure = _MEASURED - given

    def receive(
        self,
        *,
        status: int | None = None,
        content_type: str | None = None,
        path: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        """Start reading the raw response body: give every chunk to :meth:`feed`.

        Args:
            status: the HTTP status.
            content_type: the ``Content-Type``; ``text/event-stream`` is read
                as a stream, anything else as one JSON body.
            path: the request's path (``/v1/chat/completions``), which tells
                the API; without it the body's shape does.
            max_bytes: the most body bytes kept (usage is read beyond them).

        Raises:
            InvalidInput: a bad ``status`` or ``max_bytes``, or the call
                already has a response.
        """
        if self._state != _OPEN:
            return
        self._check_unanswered()
        if status is not None and not (
            isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599
        ):
            raise InvalidInput(
                f"status must be an HTTP status (100 to 599) or None, got {status!r}"
            )
        self._parser = ResponseParser(
            path, content_type, max_bytes=max_bytes, started=self._started
        )
        self._status = status

    def feed(self, chunk: bytes) -> None:
        """Take the next raw chunk of the body, after :meth:`receive`.

        Raises:
            InvalidInput: ``receive()`` was not called first.
        """
        parser = self._parser
        if parser is None:
            if self._state != _OPEN:
                return
            raise InvalidInput("call.feed() reads a body: call call.receive(...) first")
        if self._state == _OPEN:
            parser.feed(chunk)

    def _check_unanswered(self) -> None:
        if self._response is not None or self._parser is not None:
            raise InvalidInput(
                "the call already has a response: call.respond() or call.receive() once per call"
            )

    # -- the end ----------------------------------------------------------------------

    async def finish(self, error: BaseException | str | None = None, *, wait: bool = True) -> None:
        """End the call now and queue its record (the end of the block does this).

        Args:
            error: the exception that ended the call, or a description of
                what went wrong; None when it ended normally. A
                ``CancelledError`` or ``KeyboardInterrupt`` queues the record
                without waiting for room.
            wait: under ``on_full="block"``, wait for room as ``arecord()``
                does. False queues it now, as ``record()`` does: a full
                queue raises ``RecorderFull`` (or drops it, under
                ``"drop"``). For code that must never wait on the recorder,
                such as a client whose caller is reading the response.

        Calling it again, or after ``stop()`` recorded the call, does nothing.

        Raises:
            RecorderFull: the queue is full and ``on_full`` is ``"raise"``
                (or ``"block"``, with ``wait=False``).
        """
        if self._state != _OPEN:
            return
        interrupted = isinstance(error, BaseException) and not isinstance(error, Exception)
        document = self._final_document(None if error is None else _describe(error))
        await self._calls.queue(self, document, wait=wait and not interrupted, force=interrupted)

    def _final_document(self, error: str | None) -> QueuedRecord:
        """The record as the call stands, its response complete; the call is ended."""
        if self._document is None:
            self._state = _ENDED
            self._checked.respond(self._final(error))
            self._document = queued_record(self._checked, self.record_id, self.created_at)
            # Nothing here asks whether the answer's body was vouched for (the
            # request was copied and checked in full when the call opened): the
            # vouch is dropped now, not held, with the body, until another replaces it.
            forget_vouched()
        return self._document

    def _final(self, error: str | None) -> LLMResponse:
        end = time.perf_counter()
        first = None if self._first is None else (self._first - self._started) * 1000
        if self._parser is not None:
            response = self._parser.finish(status=self._status, error=error)
            if first is not None:
                response = response.model_copy(update={"ttft_ms": first, "stream": True})
            return response
        latency = max(0.0, (end - self._started) * 1000)
        if self._response is None:
            return LLMResponse(
                latency_ms=latency, ttft_ms=first, stream=first is not None, error=error
            )
        updates: dict[str, Any] = {}
        if "latency_ms" in self._measure:
            updates["latency_ms"] = latency
        if "completed_at" in self._measure:
            updates["completed_at"] = now_ms()
        if "ttft_ms" in self._measure and first is not None:
            updates["ttft_ms"] = first
        if error is not None:
            # What ended the call outside the response comes first, as in ResponseParser.
            updates["error"] = error
        # Each value was checked (or made here): no need to validate the copy again.
        return self._response.model_copy(update=updates)

    async def __aenter__(self) -> RecordedCall:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.finish()
            return
        try:
            await self.finish(exc)
        except LLMReqError as error:
            # The block's exception is the one that propagates.
            _log.error("the record of a call that raised %r was not queued: %s", exc, error)

    def __repr__(self) -> str:
        return f"RecordedCall({self.record_id}, {self._state})"


def _describe(error: BaseException | str) -> str:
    """The ``error`` text for what ended a call."""
    if isinstance(error, str):
        return error[:_MAX_ERROR]
    if isinstance(error, asyncio.CancelledError):
        return "the call was cancelled"
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if not isinstance(error, Exception):
        return f"the call was interrupted ({name})"
    text = str(error)
    return (f"{name}: {text}" if text else name)[:_MAX_ERROR]
