"""The response side of ``LLMRequestLogger(capture="response")``: a call, watched as it is answered.

The application is given :meth:`ResponseCapture.send` instead of the server's ``send``.
Every message goes on to the server's ``send`` first, the very same object and at once
(nothing is buffered, so a stream reaches the client chunk by chunk); only once the
server has taken a body chunk is it read, by a :class:`~llmreq_mongo._capture.ResponseParser`
that keeps a bounded copy and understands JSON and ``text/event-stream`` bodies (sent
compressed with ``gzip`` or ``deflate``, they are read decoded: see :mod:`._decoding`).

The parser reads the first body chunk at once (it dates the first byte) and the later
ones in batches of up to 64 KiB, the rest when the response ends: between two chunks
the application pays for a list append, not a parse.

The response ends, and ``on_end`` is called with its :class:`~llmreq_mongo.LLMResponse`,
exactly once: when the last body message has been sent, or when the application ends
without sending it. In that second case the response carries an ``error`` saying why:
the handler raised, the client disconnected (``http.disconnect`` was received, or the
server's ``send`` raised), or the application returned early. The exception, if any,
propagates unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llmreq_mongo._capture import LLMResponse, ResponseParser

from ._asgi_checks import logged_path
from ._decoding import BodyDecoder, decoder_for

__all__ = ["ResponseCapture"]

logger = logging.getLogger("llmreq_mongo.integrations.asgi")

_Message = MutableMapping[str, Any]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[Any, Any, Any], Awaitable[None]]

#: The longest exception message kept in ``error``.
_MAX_MESSAGE = 500

CLIENT_DISCONNECTED = "the client disconnected before the response ended"
RETURNED_EARLY = "the application returned before the response ended"


def _described(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _body_headers(headers: Any) -> tuple[str | None, list[str]]:
    """The ``Content-Type`` and the ``Content-Encoding`` values of a response's headers."""
    content_type: str | None = None
    encodings: list[str] = []
    for name, value in headers or ():
        lowered = name.lower()
        if lowered == b"content-type" and content_type is None:
            content_type = bytes(value).decode("latin-1")
        elif lowered == b"content-encoding":
            encodings.append(bytes(value).decode("latin-1"))
    return content_type, encodings


class ResponseCapture:
    """Watches what one application sends, and reads it into an :class:`LLMResponse`.

    Args:
        send: the server's ``send``; every message is passed to it unchanged.
        path: the request's path, which tells the parser which API answered.
        started: when the request arrived, as a :func:`time.perf_counter` reading:
            ``latency_ms`` and ``ttft_ms`` are measured from it.
        max_bytes: the most response-body bytes kept for parsing.
        on_end: called once, when the response has ended, with the response and
            whether the call failed on the way (the handler raised, the client
            disconnected, the response never ended).

    Attributes:
        disconnected: the application received ``http.disconnect`` (set by the
            middleware's ``receive``).
    """

    __slots__ = (
        "_decoder",
        "_ended",
        "_error",
        "_max_bytes",
        "_on_end",
        "_parser",
        "_path",
        "_send",
        "_started",
        "_status",
        "disconnected",
    )

    def __init__(
        self,
        send: _Send,
        *,
        path: str | None,
        started: float,
        max_bytes: int,
        on_end: Callable[[LLMResponse, bool], None],
    ) -> None:
        self._send = send
        self._path = path
        self._started = started
        self._max_bytes = max_bytes
        self._on_end = on_end
        self._parser: ResponseParser | None = None
        # Undoes the body's Content-Encoding (gzip, deflate) for the parser; None if plain.
        self._decoder: BodyDecoder | None = None
        self._status: int | None = None
        self._ended = False
        # What went wrong on the way out (the server's send raised), kept until the end.
        self._error: str | None = None
        self.disconnected = False

    async def send(self, message: _Message) -> None:
        """Pass ``message`` on to the server, then read it."""
        try:
            await self._send(message)
        except BaseException as exc:
            # The server could not take it: the client is gone (ASGI 2.4 servers raise
            # an OSError), or the task was cancelled. The application sees the same
            # exception, as it would without the middleware.
            if self._error is None:
                self._error = f"{CLIENT_DISCONNECTED} (sending raised {_described(exc)})"
            raise
        kind = message.get("type")
        if kind == "http.response.body":
            body = message.get("body")
            if body:
                self._parse(body)
            if not message.get("more_body", False):
                self.end(self._error)
        elif kind == "http.response.start":
            status = message.get("status")
            self._status = status if isinstance(status, int) else None
            content_type, encodings = _body_headers(message.get("headers"))
            self._parser = ResponseParser(
                self._path, content_type, max_bytes=self._max_bytes, started=self._started
            )
            if encodings:
                self._decoder = decoder_for(encodings, self._max_bytes)
        elif kind == "http.response.pathsend":  # a file sent by the server: the end
            self.end(self._error)

    async def run(self, app: _App, scope: Any, receive: Any) -> None:
        """Run ``app`` with this capture's ``send``; end the response when the app ends.

        Whatever the application raises propagates unchanged, once the call is recorded.
        """
        try:
            await app(scope, receive, self.send)
        except BaseException as exc:
            self.end(self._error or f"the handler raised {_described(exc)}")
            raise
        if not self._ended:
            self.end(self._error or (CLIENT_DISCONNECTED if self.disconnected else RETURNED_EARLY))

    def _parse(self, body: bytes | None) -> None:
        """Feed ``body`` to the parser (None: have it read what it holds).

        A failure of the parser is kept for the record's ``error``, never
        raised into the application.
        """
        parser = self._parser
        if parser is None:
            return
        try:
            decoder = self._decoder
            if decoder is not None:
                # Sent compressed (a GZipMiddleware inside this one): read decoded.
                data = decoder.flush() if body is None else decoder.decode(body)
                if decoder.error is not None:  # status and timings are still recorded
                    self._parser = None
                    self._error = decoder.error
                    return
                if data:
                    parser.feed(data)
            elif body is not None:
                parser.feed(body)
            if body is None:
                parser.flush()
        except Exception as exc:  # recording must never fail the request
            self._parser = None
            self._error = f"the response could not be read: {_described(exc)}"

    def end(self, error: str | None = None) -> None:
        """Finish the response and hand it to ``on_end``; later calls do nothing."""
        if self._ended:
            return
        self._ended = True
        self._parse(None)
        if self._error is not None and error is None:  # the body could not be read
            error = self._error
        parser = self._parser
        if parser is None:  # nothing was sent: the record says so, with the time it took
            parser = ResponseParser(
                self._path, None, max_bytes=self._max_bytes, started=self._started
            )
        try:
            response = parser.finish(status=self._status, error=error)
        except Exception as exc:  # recording must never fail the request
            logger.warning(
                "llmreq: could not read the response to %s: %s", logged_path(self._path), exc
            )
            return
        self._on_end(response, error is not None)
