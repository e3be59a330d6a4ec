"""Undo a response's ``Content-Encoding`` for reading, while the client gets the bytes as sent.

A transport sees the body as it came over the wire: compressed when the
provider compressed it (httpx asks for ``gzip, deflate``), and decoded by the
client only after the transport. The recorder reads a decoded copy.
``gzip`` and ``deflate`` are read (the encodings httpx asks for unless the
``brotli`` or ``zstandard`` packages are installed); another encoding is
said in ``error`` and the body is not read, while status and timings are.

What a body decompresses to is bounded (``limit``): a few kilobytes of
gzip can hold gigabytes of zeros, and the copy read here must not cost the
caller that memory. Past the limit, decoding stops and ``error`` says so.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["EXPANSION", "BodyDecoder", "decoder_for"]

#: How many times the capture's limit a body may decompress to: past that
#: limit only its end is read (for the usage), and a compressed body this
#: much larger than the limit is not an answer an API sends.
EXPANSION = 4


class BodyDecoder:
    """Decodes a body chunk by chunk; after a failure, ``error`` says why and nothing more comes.

    Args:
        encodings: the values of the ``Content-Encoding`` headers, in order.
        limit: the most bytes the body may decompress to; past it decoding stops.
    """

    __slots__ = ("_left", "_limit", "_steps", "error")

    def __init__(self, encodings: Sequence[str], *, limit: int) -> None:
        self.error: str | None = None
        self._limit = self._left = limit
        names = [
            name.strip().lower()
            for value in encodings
            for name in value.split(",")
            if name.strip().lower() not in ("", "identity")
        ]
        self._steps: list[_Inflater] = []
        for name in reversed(names):  # the last encoding applied is undone first
            if name in ("gzip", "x-gzip"):
                self._steps.append(_Inflater(zlib.MAX_WBITS | 16))
            elif name == "deflate":
                self._steps.append(_Inflater(zlib.MAX_WBITS, raw_fallback=True))
            else:
                self.error = f"the body is encoded with {name!r}, which is not read here"
                self._steps = []
                return

    @property
    def active(self) -> bool:
        """Whether the body is encoded (and still being decoded)."""
        return bool(self._steps)

    def decode(self, chunk: bytes) -> bytes:
        """The decoded bytes of the next chunk (b"" once decoding has failed)."""
        if self.error is not None:
            return b""
        try:
            for step in self._steps:
                chunk = step.decode(chunk, self._left + 1)
        except zlib.error as exc:
            self._fail(exc)
            return b""
        if any(step.held for step in self._steps):  # stopped at the limit, input left over
            return self._counted(None)
        return self._counted(chunk)

    def flush(self) -> bytes:
        """What the decoders still hold, at the end of the body."""
        if self.error is not None or not self._steps:
            return b""
        data = b""
        try:
            for step in self._steps:
                data = step.decode(data, self._left + 1)
                if step.held:
                    return self._counted(None)
                data += step.flush()
        except zlib.error as exc:
            self._fail(exc)
            return b""
        return self._counted(data)

    def _counted(self, data: bytes | None) -> bytes:
        """``data``, unless it takes the body past the limit (None: it did): b"" and ``error``."""
        if data is None or len(data) > self._left:
            self.error = f"the body decompresses to more than {self._limit:,} bytes; it is not read"
            self._steps = []
            return b""
        self._left -= len(data)
        return data

    def _fail(self, exc: zlib.error) -> None:
        self.error = f"the body could not be decoded ({exc}); it is not read"
        self._steps = []


class _Inflater:
    """One zlib stream; ``deflate`` may also come raw, without its zlib header."""

    __slots__ = ("_fallback", "_inflater", "_started")

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._fallback = raw_fallback
        self._started = False

    def decode(self, chunk: bytes, most: int) -> bytes:
        """What ``chunk`` decompresses to, at most ``most`` bytes (see ``held`` for the rest)."""
        if not chunk:
            return b""
        try:
            out = self._inflater.decompress(chunk, most)
        except zlib.error:
            if not self._fallback or self._started:
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflater.decompress(chunk, most)
        self._started = True
        return out

    @property
    def held(self) -> bool:
        """Whether input is left undecoded: the last ``decode`` stopped at its ``most``."""
        return bool(self._inflater.unconsumed_tail)

    def flush(self) -> bytes:
        """What the stream still holds once all its input was taken (at most its window)."""
        return self._inflater.flush()


def decoder_for(encodings: Sequence[str], max_bytes: int) -> BodyDecoder | None:
    """The decoder of a body with these ``Content-Encoding`` values, or None when it is not encoded.

    ``max_bytes`` is the capture's limit: the body may decompress to
    :data:`EXPANSION` times that.
    """
    decoder = BodyDecoder(encodings, limit=max_bytes * EXPANSION)
    return decoder if decoder.active or decoder.error is not None else None
