"""Undo a response's ``Content-Encoding`` for reading, while the client gets the bytes as sent.

A transport sees the body as it came over the wire: compressed when the
provider compressed it (httpx asks for ``gzip, deflate``), and decoded by the
client only after the transport. The recorder reads a decoded copy.
``gzip`` and ``deflate`` are read (the encodings httpx asks for unless the
``brotli`` or ``zstandard`` packages are installed); another encoding is
said in ``error`` and the body is not read, while status and timings are.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["BodyDecoder"]


class BodyDecoder:
    """Decodes a body chunk by chunk; after a failure, ``error`` says why and nothing more comes.

    Args:
        encodings: the values of the ``Content-Encoding`` headers, in order.
    """

    __slots__ = ("_steps", "error")

    def __init__(self, encodings: Sequence[str]) -> None:
        self.error: str | None = None
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
                chunk = step.decode(chunk)
        except zlib.error as exc:
            self._fail(exc)
            return b""
        return chunk

    def flush(self) -> bytes:
        """What the decoders still hold, at the end of the body."""
        if self.error is not None or not self._steps:
            return b""
        data = b""
        try:
            for step in self._steps:
                data = step.decode(data) + step.flush()
        except zlib.error as exc:
            self._fail(exc)
            return b""
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

    def decode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        try:
            out = self._inflater.decompress(chunk)
        except zlib.error:
            if not self._fallback or self._started:
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflater.decompress(chunk)
        self._started = True
        return out

    def flush(self) -> bytes:
        return self._inflater.flush()
