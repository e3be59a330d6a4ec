"""An incremental, bounded parser of Server-Sent Events (``text/event-stream``).

Bytes go in as they arrive, in chunks cut anywhere (inside a line, between
``\\r`` and ``\\n``, inside a UTF-8 sequence); complete events come out. It
follows the WHATWG rules: lines end with ``\\r\\n``, ``\\r`` or ``\\n``; a line
starting with ``:`` is a comment; ``data`` lines of one event are joined with
``\\n``; a blank line ends an event; an event with no data is not dispatched.

Lines are split on bytes and decoded whole, which is why a UTF-8 sequence cut
by a chunk boundary needs no special care: a line ending is never part of a
multi-byte sequence.

The parser holds at most ``max_event_bytes`` of one event. An event larger
than that is not kept: it comes out once, with ``overflowed=True`` and only
the last :data:`OVERFLOW_TAIL` bytes of its data, so that a caller can still
look for what it needs near its end (a usage object, say).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["OVERFLOW_TAIL", "SSEEvent", "SSEParser"]

#: How much of an oversized event's data is kept (its end).
OVERFLOW_TAIL = 16 * 1024


class SSEEvent(NamedTuple):
    """One dispatched event.

    Attributes:
        event: the ``event`` field, ``"message"`` when there was none.
        data: the ``data`` lines joined with ``\\n``.
        id: the ``id`` field, or None.
        overflowed: the event was larger than the parser keeps; ``data`` is
            only its last :data:`OVERFLOW_TAIL` bytes.
    """

    event: str
    data: str
    id: str | None = None
    overflowed: bool = False


class SSEParser:
    """Turn chunks of an event stream into :class:`SSEEvent` objects.

    Example::

        parser = SSEParser(max_event_bytes=1 << 20)
        for chunk in chunks:
            for event in parser.feed(chunk):
                ...
        for event in parser.close():
            ...
    """

    __slots__ = (
        "_data",
        "_event",
        "_id",
        "_long_line",
        "_max",
        "_overflowed",
        "_pending",
        "_size",
        "_skip_lf",
        "_started",
    )

    def __init__(self, *, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        # The end of the last chunk that is not yet a whole line.
        self._pending = b""
        self._event: bytes | None = None
        self._id: bytes | None = None
        self._data: list[bytes] = []
        self._size = 0
        self._overflowed = False
        self._started = False
        self._skip_lf = False
        self._long_line = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk`` and return the events it completes (often none or one)."""
        buffer = self._pending + chunk if self._pending else chunk
        if not self._started and buffer:
            if len(buffer) < 3 and b"\xef\xbb\xbf".startswith(buffer):
                self._pending = buffer
                return []
            self._started = True
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
        if self._skip_lf and buffer:
            # The last chunk ended with \r, already taken as a line end: this is its \n.
            self._skip_lf = False
            if buffer[:1] == b"\n":
                buffer = buffer[1:]
        if b"\r" in buffer:
            # A final \r may be the first half of \r\n: it ends a line either way,
            # and a \n opening the next chunk is then dropped.
            self._skip_lf = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        rest = lines.pop()
        events: list[SSEEvent] = []
        if self._long_line:
            if not lines:
                self._overflow(rest, newline=False)
                self._pending = b""
                return events
            self._overflow(lines[0], newline=False)
            self._long_line = False
            lines = lines[1:]
        # The two lines of nearly every event, inline: this runs for every chunk.
        for line in lines:
            if not line:
                if self._data:
                    self._dispatch(events)
                else:
                    self._event = None
                    self._overflowed = False
            elif line[:6] == b"data: " and not self._overflowed:
                size = self._size + len(line) - 5
                if size > self._max:
                    self._line(line, events)
                else:
                    self._size = size
                    self._data.append(line[6:])
            else:
                self._line(line, events)
        if len(rest) + self._size > self._max:
            # One line longer than the limit: keep its tail, and the tail of what follows.
            self._overflow(rest[6:] if rest.startswith(b"data: ") else rest)
            self._long_line = True
            rest = b""
        self._pending = rest
        return events

    def data_of_whole_events(self, chunk: bytes) -> list[bytes] | None:
        """The data of every event in ``chunk``, when it holds only the plainest events.

        The shape of nearly every chat completions stream: each event one
        ``data: ...`` line and a blank line, no other field, no ``\\r``, the
        chunk ending where an event ends, and this parser between two events
        (nothing pending from the chunk before). Then the events are read
        with a few calls in C, and the parser's state is as :meth:`feed`
        would leave it.

        Returns:
            Each event's data (what follows ``data: ``), undecoded, in order;
            or None, and nothing is read, when ``chunk`` is of any other
            shape: :meth:`feed` reads it then, with the same result.
        """
        if (
            not self._started
            or self._pending
            or self._data
            or self._event is not None
            or self._overflowed
            or self._skip_lf
            or self._long_line
            or not chunk.startswith(b"data: ")
            or not chunk.endswith(b"\n\n")
            or b"\r" in chunk
        ):
            return None
        events = chunk[6:-2].split(b"\n\ndata: ")
        # No newline but the two that end each event: each event is that one line.
        if chunk.count(b"\n") != 2 * len(events):
            return None
        if len(chunk) > self._max and max(map(len, events)) > self._max - 1:
            return None  # an event over the limit: feed() keeps its tail
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: an event not closed by a blank line is discarded, as browsers do.

        Returns:
            Always an empty list today; it is a list so that a caller treats
            it as it treats :meth:`feed`.
        """
        self._pending = b""
        self._long_line = False
        self._reset()
        return []

    @property
    def buffered(self) -> int:
        """How many bytes of the stream the parser holds now (at most about ``max_event_bytes``)."""
        return len(self._pending) + sum(len(part) for part in self._data)

    @property
    def partial(self) -> bool:
        """Whether the stream so far ends inside an event (bytes not yet dispatched)."""
        return bool(self._pending) or bool(self._data) or self._overflowed

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith(b"data:"):
            value = line[6:] if line[5:6] == b" " else line[5:]
            if self._overflowed or self._size + len(value) + 1 > self._max:
                self._overflow(value)
                return
            self._size += len(value) + 1
            self._data.append(value)
            return
        if line[:1] == b":":
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            # "data" without a colon: an empty data line.
            self._line(b"data:", events)
        elif name == b"event":
            self._event = value
        elif name == b"id" and b"\x00" not in value:
            self._id = value
        # "retry" and unknown fields are ignored, as the standard says.

    def _overflow(self, more: bytes, *, newline: bool = True) -> None:
        """Keep only the tail of an event that grew past the limit."""
        if not self._overflowed:
            self._overflowed = True
            more = b"\n".join([*self._data, more]) if self._data else more
            self._data = []
        joint = b"\n" if newline else b""
        kept = (self._data[0] + joint + more) if self._data else more
        self._data = [kept[-OVERFLOW_TAIL:]]
        self._size = 0

    def _dispatch(self, events: list[SSEEvent]) -> None:
        parts = self._data
        if parts:
            data = b"\n".join(parts) if len(parts) > 1 else parts[0]
            kind = self._event
            events.append(
                SSEEvent(
                    kind.decode("utf-8", "replace") if kind else "message",
                    data.decode("utf-8", "replace"),
                    None if self._id is None else self._id.decode("utf-8", "replace"),
                    self._overflowed,
                )
            )
            self._data = []
        self._event = None
        self._size = 0
        self._overflowed = False

    def _reset(self) -> None:
        self._event = None
        self._data = []
        self._size = 0
        self._overflowed = False
