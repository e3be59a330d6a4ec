"""A chat stream read in batches of whole events gives what reading it event by event gives.

The parser reads the chunks it holds in one batch, and a batch of plain
``data:`` events is read with a shortcut (the events split and decoded in a
loop in C, the most common chunk taken inline). The reference here is the
same stream fed one byte at a time, each byte read at once: no byte can be
a batch of whole events, so every event goes through the SSE parser and
``ChatStream.event``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from capture_upstream import chat_stream_chunks

from llmreq_mongo._capture import LLMResponse, ResponseParser
from llmreq_mongo._capture.sse import SSEParser

CHAT = "/v1/chat/completions"
SSE = "text/event-stream"


def _event(chunk: Any) -> bytes:
    text = chunk if isinstance(chunk, str) else json.dumps(chunk, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def _chunk(
    delta: dict[str, Any] | None = None, *, reason: str | None = None, **fields: Any
) -> dict[str, Any]:
    choice = {"index": 0, "delta": {} if delta is None else delta, "finish_reason": reason}
    return {"id": "c-1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]} | (
        fields
    )


def _text(*pieces: str) -> list[bytes]:
    return [_event(_chunk({"content": piece})) for piece in pieces]


OPENING = [_event(_chunk({"role": "assistant", "content": ""}))]
ENDING = [_event(_chunk(reason="stop")), _event("[DONE]")]

#: Streams of every shape the shortcut must read as the event-by-event path does,
#: or leave to it. Each starts with the opening chunk, read at once, as the first is.
STREAMS: dict[str, list[bytes]] = {
    "text with usage": chat_stream_chunks("answer", include_usage=True),
    "tool calls in pieces": chat_stream_chunks("tools", include_usage=False),
    "a fingerprint that changes": [
        *OPENING,
        _event(_chunk({"content": "a"}, system_fingerprint="fp_1")),
        _event(_chunk({"content": "b"}, system_fingerprint="fp_2")),
        *ENDING,
    ],
    "an empty data line": [*OPENING, *_text("a"), b"data: \n\n", *_text("b"), *ENDING],
    "[DONE] in the middle": [*OPENING, *_text("a"), _event("[DONE]"), *_text("b"), *ENDING],
    "no [DONE] at all": [*OPENING, *_text("a", "b")],
    "an event that is not JSON": [*OPENING, *_text("a"), b"data: {nope\n\n", *_text("b"), *ENDING],
    "an integer past 64 bits": [
        *OPENING,
        *_text("a"),
        _event(_chunk({"content": "b"}, created=123456789012345678901234)),
        _event({"choices": [{"index": 0, "delta": {}, "logprobs": {"n": 2**70}}]}),
        *ENDING,
    ],
    "a NaN json.loads reads": [*OPENING, b'data: {"choices": [], "x": NaN}\n\n', *ENDING],
    "bytes that are not UTF-8": [
        *OPENING,
        b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n',
        *_text("b"),
        *ENDING,
    ],
    "an error chunk": [*OPENING, *_text("a"), _event({"error": {"message": "overloaded"}})],
    "an error chunk with content": [
        *OPENING,
        _event(_chunk({"content": "a"}, error={"message": "overloaded"})),
        *ENDING,
    ],
    "a second choice appears": [
        *OPENING,
        *_text("a"),
        _event({"choices": [{"index": 1, "delta": {"content": "x"}}]}),
        _event({"choices": [{"index": 1, "delta": {"content": "y"}}]}),
        *ENDING,
    ],
    "an index that is not an integer": [
        *OPENING,
        _event({"choices": [{"index": "0", "delta": {"content": "x"}}]}),
        _event({"choices": [{"index": True, "delta": {"content": "y"}}]}),
        _event({"choices": [{"index": False, "delta": {"content": "z"}}]}),
        *ENDING,
    ],
    "the finish reason with the last content": [
        *OPENING,
        *_text("a"),
        _event(_chunk({"content": "b"}, reason="length")),
        _event("[DONE]"),
    ],
    "content after the finish reason": [
        *OPENING,
        _event(_chunk({"content": "a"}, reason="length")),
        *_text("b"),
        *ENDING,
    ],
    "logprobs": [
        *OPENING,
        _event(
            _chunk({"content": "a"})
            | {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "a"},
                        "logprobs": {"content": [{"token": "a"}]},
                    }
                ]
            }
        ),
        *_text("b"),
        *ENDING,
    ],
    "content that is not a string": [
        *OPENING,
        _event(_chunk({"content": None})),
        _event(_chunk({"content": 7})),
        _event(_chunk({"content": "b", "refusal": "no"})),
        *ENDING,
    ],
    "usage in every chunk": [
        *OPENING,
        _event(_chunk({"content": "a"}, usage={"prompt_tokens": 1, "completion_tokens": 1})),
        _event(_chunk({"content": "b"}, usage={"prompt_tokens": 1, "completion_tokens": 2})),
        *ENDING,
    ],
    "chunks that are not objects": [*OPENING, b"data: [1, 2]\n\n", b"data: 3\n\n", *ENDING],
    "choices that are not a list": [*OPENING, _event({"choices": {"0": 1}}), *ENDING],
    "nested deeper than orjson reads": [
        *OPENING,
        b'data: {"choices": [], "x": ' + b"[" * 1100 + b"]" * 1100 + b"}\n\n",
        *_text("b"),
        *ENDING,
    ],
    "an event past the event limit": [
        *OPENING,
        _event(
            {
                "choices": [
                    {"index": 1, "delta": {"content": "x" * 70_000}, "finish_reason": "length"}
                ]
            }
        ),
        *_text("b"),
        *ENDING,
    ],
    "a bare CR inside an event": [
        *OPENING,
        b'data: {"choices": [{"index": 0, "delta": {"content": "cr"}}],\r"x": 1}\n\n',
        *_text("b"),
        *ENDING,
    ],
    "an event going on in a line that is no field": [
        *OPENING,
        b'data: {"choices": [{"index": 0, "delta": {"content": "nl"}}],\n"x": 1}\n\n',
        *_text("b"),
        *ENDING,
    ],
    "a data line on two lines": [
        *OPENING,
        b'data: {"choices": [{"index": 0, "delta": {"content": "two"}}],\ndata: "x": 1}\n\n',
        *ENDING,
    ],
    "a first chunk cut just before the text data: ": [
        OPENING[0] + b'data: {"choices": [{"index": 0, "delta": {"content": "',
        b'data: y"}}]}\n\n',
        *_text("b"),
        *ENDING,
    ],
    "CRLF line endings": [chunk.replace(b"\n", b"\r\n") for chunk in [*OPENING, *_text("a")]],
    "data without its space": [*OPENING, b'data:{"choices": []}\n\n', *_text("b"), *ENDING],
    "a comment and an event name": [
        *OPENING,
        b": keep-alive\n\n",
        b"event: message\n" + _event(_chunk({"content": "a"})),
        *_text("b"),
        *ENDING,
    ],
    "an id field": [*OPENING, b"id: 7\n" + _event(_chunk({"content": "a"})), *ENDING],
}


def _fields(response: LLMResponse) -> dict[str, Any]:
    return response.model_dump(exclude={"latency_ms", "ttft_ms", "completed_at"})


def _in_batches(chunks: list[bytes], max_bytes: int) -> LLMResponse:
    parser = ResponseParser(CHAT, SSE, max_bytes=max_bytes)
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish(status=200)


def _byte_by_byte(chunks: list[bytes], max_bytes: int) -> LLMResponse:
    parser = ResponseParser(CHAT, SSE, max_bytes=max_bytes)
    for byte in b"".join(chunks):
        parser.feed(bytes([byte]))
        parser.flush()
    return parser.finish(status=200)


@pytest.mark.parametrize("max_bytes", [1 << 20, 300])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_batch_of_events_reads_as_the_events_one_by_one(name: str, max_bytes: int) -> None:
    chunks = STREAMS[name]
    assert _fields(_in_batches(chunks, max_bytes)) == _fields(_byte_by_byte(chunks, max_bytes))


def test_a_plain_stream_after_its_first_chunk_is_read_without_the_event_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fed: list[bytes] = []
    feed = SSEParser.feed

    def counted(self: SSEParser, chunk: bytes) -> Any:
        fed.append(chunk)
        return feed(self, chunk)

    monkeypatch.setattr(SSEParser, "feed", counted)
    chunks = chat_stream_chunks("answer", include_usage=True)
    response = _in_batches(chunks, 1 << 20)
    assert fed == chunks[:1]
    assert response.usage is not None and response.usage.output_tokens == 12
    assert response.body is not None
    assert (
        response.body["choices"][0]["message"]["content"]
        == "The capital of France is Paris — «Paris». 🗼"
    )
    assert response.error is None and response.finish_reasons == ["stop"]


@pytest.mark.parametrize(
    "left_over",
    [
        b'data: {"cut": "in a line',  # a line not ended yet
        b'data: {"a":\n',  # a data line, the event not ended
        b"event: delta\n",  # a field of the next event
        b"data: x\r",  # a CR that may be the first half of CRLF
        b"data: " + b"x" * 70_000 + b"\n",  # an event over the limit, not ended
    ],
)
def test_whole_events_are_read_so_only_between_two_events(left_over: bytes) -> None:
    parser = SSEParser(max_event_bytes=1 << 16)
    assert parser.feed(b"data: {}\n\n")[0].data == "{}"
    assert parser.data_of_whole_events(b'data: {"n": 1}\n\ndata: 2\n\n') == [b'{"n": 1}', b"2"]
    parser.feed(left_over)
    assert parser.data_of_whole_events(b'data: {"n": 1}\n\n') is None


def test_a_chunk_of_another_shape_is_left_to_feed() -> None:
    parser = SSEParser(max_event_bytes=1 << 16)
    assert parser.data_of_whole_events(b"data: 1\n\n") is None  # nothing read yet (a BOM?)
    parser.feed(b"data: 0\n\n")
    for chunk in [
        b"data: 1\n\ndata: 2",  # the last event not ended
        b"data: 1\n",
        b": comment\n\ndata: 1\n\n",
        b"data: 1\n\nid: 2\ndata: 2\n\n",
        b"data: 1\r\n\r\n",
        b"data:1\n\n",
        b"data: 1\n\n\n\ndata: 2\n\n",  # a blank line more
        b"data: " + b"x" * (1 << 16) + b"\n\n",  # one byte past the limit
    ]:
        assert parser.data_of_whole_events(chunk) is None, chunk
    assert parser.data_of_whole_events(b"data: " + b"x" * ((1 << 16) - 1) + b"\n\n") is not None
