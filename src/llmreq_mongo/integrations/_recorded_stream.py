"""The response stream the recording transport hands the client: the same bytes, observed.

:class:`RecordedStream` wraps the body stream of a response. Every chunk is
passed on as it is, at once, before anything else is done with it; a
decoded copy (see :mod:`._decoding`) then goes to the call's parser, when
the client asks for the next chunk (or at the end). The call ends, and is recorded, at the first of:

- the stream is exhausted: the whole body was read;
- reading it raised (the connection dropped mid-body): recorded with the
  exception in ``error``, and the exception goes on, the same object;
- the client closed it before its end: what was read is recorded. For an
  event stream the parser says whether its final event had come (an SDK
  stops reading at ``[DONE]`` and closes); for another body ``error``
  says it was closed before its end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from llmreq_mongo._recording.call import RecordedCall
from llmreq_mongo.errors import LLMReqError

from ._decoding import BodyDecoder
from ._httpx_compat import StreamBase

__all__ = ["RecordedStream", "end_call"]

logger = logging.getLogger("llmreq_mongo.integrations.httpx")


async def end_call(call: RecordedCall, error: BaseException | str | None) -> None:
    """End ``call``; a record the recorder refuses is logged, never raised into the client.

    It never waits for room in a full queue (the client's caller is waiting
    for the response): ``on_full`` decides at once, as for ``record()``.
    """
    try:
        await call.finish(error, wait=False)
    except LLMReqError as exc:
        logger.warning("llmreq: the record of call %s was not queued: %s", call.record_id, exc)


class RecordedStream(StreamBase):
    """A response body stream whose chunks also feed ``call``.

    Args:
        inner: the response's own stream.
        call: the call being recorded, already ``receive()``-ing.
        decoder: undoes the body's ``Content-Encoding`` for the parser.
        stream: whether the body is an event stream.
    """

    def __init__(
        self, inner: Any, call: RecordedCall, decoder: BodyDecoder, *, stream: bool
    ) -> None:
        self._inner = inner
        self._call = call
        self._decoder = decoder
        self._stream = stream
        self._iterated = False
        self._received = 0
        #: The chunk handed to the client and not yet read: it is read when
        #: the client asks for the next one, or at the end.
        self._unread: bytes | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            # Some streams can be read again (httpx's ASGITransport's): only
            # the first pass is what the client read.
            async for chunk in self._inner:
                yield chunk
            return
        self._iterated = True
        try:
            async for chunk in self._inner:
                if not self._received and self._stream and chunk:
                    self._call.first_token()  # when it came, not when it is read
                self._received += len(chunk)
                # The client gets each chunk first; it is read afterwards.
                self._unread = chunk
                yield chunk
                self._unread = None
                self._read(chunk)
        except GeneratorExit:
            raise  # the client stopped reading; aclose() records the call
        except BaseException as exc:
            await self._end(exc)
            raise
        await self._end(None)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._call.ended:
                # An event stream's parser knows whether its final event came.
                early = (
                    f"the client closed the response after {self._received} bytes, before its end"
                )
                await self._end(None if self._stream else early)

    def _read(self, chunk: bytes) -> None:
        decoder = self._decoder
        if decoder.error is None and not self._call.ended:
            self._call.feed(decoder.decode(chunk) if decoder.active else chunk)

    async def _end(self, error: BaseException | str | None) -> None:
        call, decoder = self._call, self._decoder
        if call.ended:
            return
        if self._unread is not None:  # the last chunk the client got
            self._read(self._unread)
            self._unread = None
        if decoder.active:
            call.feed(decoder.flush())
        if decoder.error is not None and not isinstance(error, BaseException):
            # Why the body could not be read says more than that it was closed early.
            error = decoder.error
        await end_call(call, error)
