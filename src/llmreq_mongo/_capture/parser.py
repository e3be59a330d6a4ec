"""One entry point for reading a response as it passes: :class:`ResponseParser`.

The ASGI middleware (server side) and the httpx transport (client side) both
create one per call, hand it every body chunk as it goes by, and ask it for
the :class:`~.models.LLMResponse` at the end. It never raises on what the
upstream sent: whatever it cannot read is left out and, where that matters,
said in ``error``.

Cost and memory are bounded. A JSON body is buffered up to ``max_bytes``; an
event stream is parsed event by event and only its assembled body is kept,
and only while the stream is within ``max_bytes``. Beyond that the body is
dropped and ``truncated`` set, but usage, ids and finish reasons are still
read: from every later event of a stream, and from the two ends of a JSON
body. The first chunk is read as it is fed; the next ones are held and read
in batches of up to :data:`PARSE_BATCH` bytes (and at :meth:`~ResponseParser.finish`),
so that a stream of a hundred small chunks costs the per-feed work a few
times, not a hundred.
"""

from __future__ import annotations

import time
from typing import Any

from llmreq_mongo._checks import check_int
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import InvalidInput

from .bodies import api_of_event, read_body, read_oversized_body
from .chat import ChatStream
from .decode import TooDeep, loads_plain
from .messages import MessagesStream
from .models import DecodedBody, LLMResponse, vouched_response
from .outcome import (
    API,
    MAX_ERROR_CHARS,
    MAX_FINISH_REASONS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    Assembler,
    Outcome,
    api_for_path,
    clipped,
)
from .responses import ResponsesStream
from .sse import SSEEvent, SSEParser

__all__ = ["DEFAULT_MAX_BYTES", "PARSE_BATCH", "ResponseParser"]

#: How much of a response body is kept by default (4 MiB).
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
#: How many body bytes the parser holds before it reads them (the first chunk
#: is read at once).
PARSE_BATCH = 64 * 1024
# Of a JSON body over the limit, its first and last bytes are kept to read
# its id and model (at the start) and its usage (at the end).
_HEAD = 4096
_TAIL = 16 * 1024
# Whatever max_bytes is, an event this large is still read whole: the events
# that carry usage and ids are small, and must be read even when the body is
# not kept.
_MIN_EVENT_BYTES = 64 * 1024

_ASSEMBLERS: dict[API, type[ChatStream] | type[ResponsesStream] | type[MessagesStream]] = {
    "chat": ChatStream,
    "responses": ResponsesStream,
    "messages": MessagesStream,
}


def _is_event_stream(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == (  # type: ignore[union-attr]
        "text/event-stream"
    )


def _clipped(text: str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    """``text`` cut to ``limit`` characters (see :func:`~.outcome.clipped`), or None.

    Every field read from the response outside its body is bounded, so that a
    record whose body was dropped always fits in one MongoDB document: the
    request is never the part that is lost.
    """
    return None if text is None else clipped(text, limit)


class ResponseParser:
    """Reads one response, chunk by chunk, into an :class:`LLMResponse`.

    Args:
        path: the request's path (``/v1/chat/completions``): it says which API
            answered. None (or another path) lets the body's shape decide.
        content_type: the response's ``Content-Type``; ``text/event-stream``
            is read as a stream, anything else as one JSON body.
        max_bytes: the most body bytes kept (the assembled body of a stream is
            dropped once the stream passes it).
        started: when the request arrived, as a :func:`time.perf_counter`
            reading; by default, when the parser is created.

    Example::

        parser = ResponseParser("/v1/chat/completions", "text/event-stream")
        async for chunk in stream:
            parser.feed(chunk)
        response = parser.finish(status=200)

    Raises:
        InvalidInput: ``max_bytes`` is not a positive integer.
    """

    __slots__ = (
        "_api",
        "_assembler",
        "_chunks",
        "_first_byte",
        "_head",
        "_held",
        "_held_bytes",
        "_max",
        "_plain",
        "_received",
        "_sse",
        "_started",
        "_tail",
        "stream",
    )

    def __init__(
        self,
        path: str | None,
        content_type: str | None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        started: float | None = None,
    ) -> None:
        self._max = check_int("max_bytes", max_bytes)
        self._started = time.perf_counter() if started is None else started
        self._api: API | None = api_for_path(path)
        #: Whether the response is an event stream.
        self.stream = _is_event_stream(content_type)
        self._sse = (
            SSEParser(max_event_bytes=max(self._max, _MIN_EVENT_BYTES)) if self.stream else None
        )
        self._assembler: Assembler | None = None
        self._chunks: list[bytes] = []
        self._received = 0
        self._first_byte: float | None = None
        self._head: bytes | None = None
        self._tail = b""
        # Chunks fed after the first and not read yet, and their size.
        self._held: list[bytes] = []
        self._held_bytes = 0
        # The JSON body, when the decoder vouched for it (loads_plain).
        self._plain: Any = None

    @property
    def received(self) -> int:
        """How many body bytes were fed."""
        return self._received + self._held_bytes

    @property
    def truncated(self) -> bool:
        """Whether the body went past ``max_bytes`` (and is no longer kept)."""
        return self.received > self._max

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Take the next chunk of the body, as it was sent.

        The chunk is copied if it is not ``bytes`` (a ``bytearray`` its
        sender may reuse). The first is read at once, the next ones when
        :data:`PARSE_BATCH` bytes are held, or at :meth:`flush` or
        :meth:`finish`.
        """
        if not chunk:
            return
        chunk = bytes(chunk)  # the same object when it is bytes already
        if self._first_byte is None:
            self._first_byte = time.perf_counter()
            self._read(chunk)
            return
        self._held.append(chunk)
        self._held_bytes += len(chunk)
        if self._held_bytes >= PARSE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Read the chunks held so far (:meth:`finish` does it too)."""
        held = self._held
        if held:
            self._held, self._held_bytes = [], 0
            self._read(held[0] if len(held) == 1 else b"".join(held))

    def _read(self, chunk: bytes) -> None:
        was_within = self._received <= self._max
        self._received += len(chunk)
        within = self._received <= self._max
        sse = self._sse
        if sse is not None:
            assembler = self._assembler
            if type(assembler) is not ChatStream or not (
                (texts := sse.data_of_whole_events(chunk)) is not None
                and assembler.data_events(texts, chunk)
            ):
                for event in sse.feed(chunk):
                    self._event(event)
            if was_within and not within and self._assembler is not None:
                self._assembler.drop_body()
        elif within:
            self._chunks.append(chunk)
        elif was_within:
            kept = b"".join([*self._chunks, chunk])
            self._head = kept[:_HEAD]
            self._tail = kept[-_TAIL:]
            self._chunks = []
        else:
            self._tail = (self._tail + chunk)[-_TAIL:]

    def _event(self, event: SSEEvent) -> None:
        assembler = self._assembler
        if assembler is None:
            api = self._api or api_of_event(event.event, event.data)
            if api is None:
                return
            assembler = self._assembler = _ASSEMBLERS[api]()
            if self.truncated:
                assembler.drop_body()
        assembler.event(event)

    def finish(self, *, status: int | None = None, error: str | None = None) -> LLMResponse:
        """The response as received so far; call it once, when the response has ended.

        Args:
            status: the HTTP status, if known.
            error: what went wrong outside the body (the upstream could not be
                reached, the client went away, the handler raised); it takes
                precedence over what the body says.
        """
        end = time.perf_counter()
        self.flush()
        outcome = self._outcome()
        truncated = self.truncated
        if truncated:
            outcome.body = None
        body = outcome.body
        fields: dict[str, Any] = {
            "status": status,
            "model": _clipped(outcome.model, MAX_NAME_CHARS),
            "response_id": _clipped(outcome.response_id, MAX_NAME_CHARS),
            "finish_reasons": [
                clipped(reason, MAX_REASON_CHARS)
                for reason in outcome.finish_reasons[:MAX_FINISH_REASONS]
            ],
            "usage": outcome.usage,
            "error": _clipped(error or outcome.error),
            "stream": self.stream,
            "latency_ms": max(0.0, (end - self._started) * 1000),
            "ttft_ms": (
                max(0.0, (self._first_byte - self._started) * 1000)
                if self.stream and self._first_byte is not None
                else None
            ),
            "completed_at": now_ms(),
            "truncated": truncated,
        }
        try:
            return vouched_response(
                fields,
                None if body is None else DecodedBody(body, plain=body is self._plain),
            )
        except InvalidInput as exc:
            # The provider's body is not storable JSON (an integer over 64 bits,
            # say): keep everything else, and say why the body is missing.
            fields["error"] = _clipped(fields["error"] or f"the body was not kept: {exc}")
            if not (isinstance(status, int) and 100 <= status <= 599):
                fields["status"] = None
            return LLMResponse(**fields)

    def _outcome(self) -> Outcome:
        if self._sse is not None:
            self._sse.close()
            if self._assembler is None:
                return Outcome()
            return self._assembler.outcome()
        if self._head is not None:
            return read_oversized_body(self._head, self._tail, self._api)
        raw = b"".join(self._chunks)
        if not raw:
            return Outcome()
        try:
            body, plain = loads_plain(raw)
        except TooDeep as exc:
            # JSON all the same: kept as text it would hold the depth it was refused for.
            return Outcome(error=f"the body was not kept: {exc}")
        except ValueError:
            # Not JSON (a proxy's error page, say): kept as text when it is text.
            try:
                return Outcome(body=raw.decode("utf-8"))
            except UnicodeDecodeError:
                return Outcome(error="the body is neither JSON nor text")
        if plain:
            self._plain = body
        return read_body(body, self._api)
