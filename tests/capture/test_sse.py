"""The Server-Sent Events parser: the WHATWG rules, chunks cut anywhere, and its bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmreq_mongo._capture import SSEEvent, SSEParser
from llmreq_mongo._capture.sse import OVERFLOW_TAIL

STREAM = (
    '\ufeffevent: delta\ndata: {"text": "héllo wörld 🗼"}\n\n'
    ": keep-alive comment\n\n"
    "data: line one\ndata: line two\n\n"
    "id: 42\nretry: 1000\nunknown: ignored\ndata:no space\n\n"
    "event: only-an-event\n\n"
    "data\n\n"
    "data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("delta", '{"text": "héllo wörld 🗼"}'),
    SSEEvent("message", "line one\nline two"),
    SSEEvent("message", "no space", "42"),
    # An event with no data line is not dispatched; "data" alone is an empty line.
    SSEEvent("message", "", "42"),
    SSEEvent("message", "[DONE]", "42"),
]


def events_of(raw: bytes, cuts: list[int], *, limit: int = 1 << 20) -> list[SSEEvent]:
    parser = SSEParser(max_event_bytes=limit)
    out: list[SSEEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(raw)]:
        out += parser.feed(raw[start:cut])
        start = cut
    return out + parser.close()


def test_the_events_of_a_stream() -> None:
    assert events_of(STREAM.encode(), []) == EXPECTED


def test_every_line_ending_gives_the_same_events() -> None:
    for ending in ("\r\n", "\r", "\n"):
        raw = STREAM.replace("\n", ending).encode()
        assert events_of(raw, []) == EXPECTED, repr(ending)


def test_a_chunk_boundary_anywhere_gives_the_same_events() -> None:
    # Every single cut, including inside the BOM, inside each UTF-8 sequence and
    # between \r and \n.
    for ending in ("\r\n", "\r", "\n"):
        raw = STREAM.replace("\n", ending).encode()
        for cut in range(len(raw) + 1):
            assert events_of(raw, [cut]) == EXPECTED, (repr(ending), cut)


@settings(max_examples=300, deadline=None)
@given(
    ending=st.sampled_from(["\r\n", "\r", "\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
)
def test_any_chunking_gives_the_same_events(ending: str, cuts: list[int]) -> None:
    raw = STREAM.replace("\n", ending).encode()
    assert events_of(raw, [c for c in cuts if c <= len(raw)]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    raw = STREAM.replace("\n", "\r\n").encode()
    assert events_of(raw, list(range(len(raw)))) == EXPECTED


def test_an_event_not_closed_by_a_blank_line_is_not_dispatched() -> None:
    parser = SSEParser(max_event_bytes=1024)
    assert parser.feed(b"data: complete\n\ndata: cut") == [SSEEvent("message", "complete")]
    assert parser.partial
    assert parser.close() == []


def test_an_event_over_the_limit_keeps_only_its_tail_and_the_stream_goes_on() -> None:
    limit = 64 * 1024
    parser = SSEParser(max_event_bytes=limit)
    big = b"x" * (5 * 1024 * 1024) + b'"usage": {"total_tokens": 3}'
    out: list[SSEEvent] = []
    most = 0
    raw = b"event: huge\ndata: " + big + b"\n\ndata: next\n\n"
    for start in range(0, len(raw), 8192):
        out += parser.feed(raw[start : start + 8192])
        most = max(most, parser.buffered)
    assert most <= limit + 8192
    huge, following = out
    assert huge.event == "huge" and huge.overflowed
    assert len(huge.data) == OVERFLOW_TAIL
    assert huge.data.endswith('"usage": {"total_tokens": 3}')
    assert following == SSEEvent("message", "next")


def test_many_data_lines_over_the_limit_are_bounded_too() -> None:
    parser = SSEParser(max_event_bytes=1000)
    out: list[SSEEvent] = []
    for n in range(2000):
        out += parser.feed(b"data: %d\n" % n)
        assert parser.buffered <= OVERFLOW_TAIL
    out += parser.feed(b"\n")
    (event,) = out
    assert event.overflowed and event.data.endswith("1998\n1999")
