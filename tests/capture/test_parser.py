"""ResponseParser on what the SDK oracles do not cover: limits, errors, detection, odd bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from capture_upstream import (
    ANTHROPIC_ERROR,
    CHAT_TOKENS,
    CHAT_USAGE,
    OPENAI_ERROR,
    RESPONSES_USAGE,
    TEXT,
    _response,
    _sse,
    chat_json,
    chat_stream_chunks,
    messages_json,
    messages_stream_events,
    responses_json,
    responses_stream_events,
)

from llmreq_mongo._capture import PARSE_BATCH, LLMResponse, ResponseParser, TokenUsage
from llmreq_mongo.errors import InvalidInput

SSE = "text/event-stream"


def run(
    path: str | None,
    content_type: str | None,
    chunks: list[bytes],
    *,
    max_bytes: int = 1 << 20,
    **finish: Any,
) -> LLMResponse:
    parser = ResponseParser(path, content_type, max_bytes=max_bytes)
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish(**finish)


def test_a_stream_over_the_limit_drops_its_body_but_keeps_its_usage() -> None:
    chunks = chat_stream_chunks("answer", include_usage=True)
    whole = run("/v1/chat/completions", SSE, chunks)
    assert whole.truncated is False and whole.body is not None
    cut = run("/v1/chat/completions", SSE, chunks, max_bytes=len(chunks[0]) + 10, status=200)
    assert cut.truncated is True and cut.body is None
    assert cut.usage == whole.usage == CHAT_TOKENS
    assert cut.finish_reasons == ["stop"] and cut.model == "gpt-4o-2024-08-06"
    assert cut.response_id == "chatcmpl-9x1" and cut.status == 200 and cut.error is None


@pytest.mark.parametrize(
    ("path", "chunks", "usage"),
    [
        ("/v1/messages", messages_stream_events("answer"), TokenUsage(
            input_tokens=132, output_tokens=57, total_tokens=189,
            cache_read_input_tokens=100, cache_creation_input_tokens=7,
        )),
        ("/v1/responses", responses_stream_events("answer"), CHAT_TOKENS.model_copy(
            update={"cache_creation_input_tokens": 5}
        )),
    ],
)  # fmt: skip
def test_other_streams_over_the_limit_keep_their_usage(
    path: str, chunks: list[bytes], usage: TokenUsage
) -> None:
    # The limit is smaller than the final event of the Responses stream itself.
    response = run(path, SSE, chunks, max_bytes=300)
    assert response.truncated and response.body is None
    assert response.usage == usage
    assert response.error is None


def test_a_final_event_too_large_to_read_still_gives_its_usage() -> None:
    # A Responses stream whose response.completed alone is larger than the parser
    # reads whole: its usage, at its end, is still found.
    long_text = "y" * 300_000
    created = _sse({"type": "response.created", "response": _response("in_progress", [], None)})
    item = {"id": "m", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": long_text, "annotations": []}]}  # fmt: skip
    done = _response("completed", [item], RESPONSES_USAGE)
    completed = _sse({"type": "response.completed", "response": done}, event="response.completed")
    response = run("/v1/responses", SSE, [created, completed], max_bytes=100_000)
    assert response.truncated and response.body is None
    assert response.usage is not None and response.usage.total_tokens == 43
    assert response.response_id == "resp_68c1" and response.error is None


def test_a_json_body_over_the_limit_keeps_id_model_and_usage() -> None:
    body = chat_json("answer")
    body["choices"][0]["message"]["content"] = "x" * 200_000
    raw = json.dumps(body).encode()
    chunks = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]
    response = run("/v1/chat/completions", "application/json", chunks, max_bytes=50_000)
    assert response.truncated and response.body is None
    assert response.response_id == "chatcmpl-9x1" and response.model == "gpt-4o-2024-08-06"
    assert response.usage == CHAT_TOKENS


def test_the_api_is_found_by_shape_when_the_path_says_nothing() -> None:
    for body, model in (
        (chat_json("answer"), "gpt-4o-2024-08-06"),
        (responses_json("answer"), "gpt-4.1-2025-04-14"),
        (messages_json("answer"), "claude-sonnet-4-5-20250929"),
    ):
        response = run("/proxy/llm", "application/json", [json.dumps(body).encode()])
        assert response.model == model and response.usage is not None
    for chunks in (
        chat_stream_chunks("answer", include_usage=True),
        responses_stream_events("answer"),
        messages_stream_events("answer"),
    ):
        response = run(None, SSE, chunks)
        assert response.error is None and response.usage is not None and response.body


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (OPENAI_ERROR, "tokens: Rate limit reached for gpt-4o in organization org-x on tokens"),
        (ANTHROPIC_ERROR, "overloaded_error: Overloaded"),
        ({"error": "Not Found"}, "Not Found"),
    ],
)
def test_an_error_body_gives_the_error(body: dict[str, Any], error: str) -> None:
    for path in ("/v1/chat/completions", "/v1/messages", "/elsewhere"):
        response = run(path, "application/json", [json.dumps(body).encode()], status=400)
        assert response.error is not None and response.error.startswith(error)
        assert response.body == body and response.usage is None


def test_a_stream_error_event_is_the_error() -> None:
    chunks = messages_stream_events("answer")[:3]
    chunks.append(_sse({"type": "error", "error": ANTHROPIC_ERROR["error"]}, event="error"))
    response = run("/v1/messages", SSE, chunks)
    assert response.error == "overloaded_error: Overloaded"
    chat = [*chat_stream_chunks("answer", include_usage=False)[:2]]
    chat.append(_sse({"error": {"message": "server overloaded", "type": "server_error"}}))
    assert run("/v1/chat/completions", SSE, chat).error == "server_error: server overloaded"


def test_a_failed_or_incomplete_response() -> None:
    failed = _response("failed", [], None)
    failed["error"] = {"code": "server_error", "message": "The model crashed"}
    incomplete = _response("incomplete", [], RESPONSES_USAGE)
    incomplete["incomplete_details"] = {"reason": "max_output_tokens"}
    for body, error, reasons in (
        (failed, "server_error: The model crashed", ["failed"]),
        (incomplete, None, ["max_output_tokens"]),
    ):
        start = _sse({"type": "response.created", "response": _response("in_progress", [], None)})
        kind = f"response.{body['status']}"
        end = _sse({"type": kind, "response": body}, event=kind)
        streamed = run("/v1/responses", SSE, [start, end])
        plain = run("/v1/responses", "application/json", [json.dumps(body).encode()])
        for response in (streamed, plain):
            assert response.error == error and response.finish_reasons == reasons
        assert streamed.body == body


def test_the_error_given_to_finish_comes_first() -> None:
    chunks = chat_stream_chunks("answer", include_usage=True)[:3]
    response = run("/v1/chat/completions", SSE, chunks, error="the client disconnected")
    assert response.error == "the client disconnected"
    assert response.body["choices"][0]["message"]["content"] == "The capital of France"


def test_a_body_that_is_not_json() -> None:
    text = run("/v1/chat/completions", "text/html", [b"<h1>502 Bad Gateway</h1>"], status=502)
    assert text.body == "<h1>502 Bad Gateway</h1>" and text.status == 502
    binary = run(None, "audio/mpeg", [b"\xff\xfb\x90\x00"])
    assert binary.body is None and binary.error == "the body is neither JSON nor text"
    empty = run(None, "application/json", [], status=204)
    assert empty.body is None and empty.error is None and empty.usage is None


def test_a_body_mongodb_cannot_store_is_left_out_and_said() -> None:
    response = run(None, "application/json", [b'{"id": 1, "n": 100000000000000000000}'])
    assert response.body is None
    assert response.error is not None and "does not fit in 64 bits" in response.error


def test_timings() -> None:
    parser = ResponseParser("/v1/chat/completions", SSE)
    for chunk in chat_stream_chunks("answer", include_usage=True):
        parser.feed(chunk)
    response = parser.finish(status=200)
    assert response.ttft_ms is not None and 0 <= response.ttft_ms <= response.latency_ms
    plain = run("/v1/chat/completions", "application/json", [json.dumps(chat_json("x")).encode()])
    assert plain.ttft_ms is None and plain.latency_ms >= 0 and not plain.stream
    assert TEXT in json.dumps(plain.body, ensure_ascii=False)


@pytest.mark.parametrize("max_bytes", [0, -1, True, 1.5, "4MiB"])
def test_max_bytes_is_checked(max_bytes: Any) -> None:
    with pytest.raises(InvalidInput, match="max_bytes must be a positive integer"):
        ResponseParser("/v1/chat/completions", SSE, max_bytes=max_bytes)


def test_usage_is_never_summed_across_chunks() -> None:
    # Some servers repeat a running usage on every chunk: the last one is the count.
    chunks = []
    for n, piece in enumerate(["a", "b", "c"], start=1):
        chunk = {
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n},
        }  # fmt: skip
        chunks.append(_sse(chunk))
    chunks.append(_sse("[DONE]"))
    response = run("/v1/chat/completions", SSE, chunks)
    assert response.usage == TokenUsage(input_tokens=5, output_tokens=3, total_tokens=8)
    assert CHAT_USAGE["prompt_tokens"] == 31


def test_content_pieces_keep_their_order_around_other_deltas() -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas = [
        {"role": "assistant", "content": "a"},
        {"content": "b"},
        {"content": "c", "refusal": None},
        {"content": "d"},
    ]
    chunks = [
        _sse({**base, "choices": [{"index": i % 2, "delta": d, "finish_reason": None}]})
        for i, d in enumerate(deltas * 2)
    ]
    chunks.append(_sse("[DONE]"))
    body = run("/v1/chat/completions", SSE, chunks).body
    # Choice 0 got deltas 0 and 2 of each round, choice 1 deltas 1 and 3.
    assert [c["message"]["content"] for c in body["choices"]] == ["acac", "bdbd"]


def test_responses_cut_inside_a_function_call_keeps_its_arguments_so_far() -> None:
    events = responses_stream_events("tools")
    # Up to the first call's first argument piece.
    kept = events[:4]
    response = run("/v1/responses", SSE, kept)
    assert response.error is not None and "ended before" in response.error
    (call,) = response.body["output"]
    assert call["type"] == "function_call" and call["arguments"] == '{"city": "Par'


def test_anthropic_cut_inside_a_tool_input_says_the_stream_ended_and_keeps_the_input() -> None:
    events = messages_stream_events("tools")
    # Up to the first tool's first input piece: message_start, ping, the block, the piece.
    response = run("/v1/messages", SSE, events[:4])
    assert response.error == (
        "the stream ended before message_stop: the body holds what was received"
    )
    (block,) = response.body["content"]
    assert block["type"] == "tool_use" and block["input"] == '{"city": "Par'


def test_anthropic_blocks_in_order_with_their_own_text() -> None:
    events = messages_stream_events("thinking")
    response = run("/v1/messages", SSE, events)
    assert [b["type"] for b in response.body["content"]] == ["thinking", "text"]
    assert response.body["content"][1]["text"] == TEXT
    assert response.body["stop_reason"] == "end_turn"
    assert response.body["usage"]["output_tokens"] == 57


def without_timings(response: LLMResponse) -> dict[str, Any]:
    return response.model_dump(exclude={"latency_ms", "ttft_ms", "completed_at"})


@pytest.mark.parametrize("max_bytes", [1 << 20, 100_000])
def test_chunks_held_in_batches_read_as_one_body_does(max_bytes: int) -> None:
    # About 200 KB in 600 chunks: the first read at once, the rest in batches,
    # and past max_bytes for the second case (the body dropped, usage still read).
    pieces = [f"piece {n:04d} — «ok» " * 12 for n in range(600)]
    chunks = chat_stream_chunks("answer", include_usage=True)
    head, tail = chunks[:1], chunks[1:]
    template = json.loads(tail[0].decode()[len("data: ") :])
    middle = []
    for piece in pieces:
        template["choices"][0]["delta"] = {"content": piece}
        middle.append(f"data: {json.dumps(template, ensure_ascii=False)}\n\n".encode())
    stream = [*head, *middle, *tail]
    assert sum(map(len, stream)) > 2 * PARSE_BATCH
    one_by_one = run("/v1/chat/completions", SSE, stream, max_bytes=max_bytes, status=200)
    whole = run("/v1/chat/completions", SSE, [b"".join(stream)], max_bytes=max_bytes, status=200)
    assert without_timings(one_by_one) == without_timings(whole)
    assert one_by_one.truncated is (max_bytes < sum(map(len, stream)))
    assert one_by_one.usage is not None


def test_a_buffer_reused_by_its_sender_is_copied() -> None:
    parser = ResponseParser("/v1/chat/completions", "application/json")
    body = json.dumps(chat_json("answer")).encode()
    buffer = bytearray(body[:10])
    parser.feed(buffer)
    buffer[:] = b"x" * 10  # the sender reuses its buffer once the chunk is sent
    second = bytearray(body[10:])
    parser.feed(second)
    second[:] = b"y" * len(second)
    assert parser.finish(status=200).body == chat_json("answer")


def _chat_chunk(choices: list[dict[str, Any]], model: str = "m") -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model}
    return _sse({**chunk, "choices": choices})


def test_a_tool_call_index_far_ahead_is_left_out_not_followed() -> None:
    # 20,000,000 empty calls would cost seconds and gigabytes for a 200-byte chunk.
    far = {"index": 20_000_000, "function": {"name": "f", "arguments": ""}}
    near = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "g"}}
    chunks = [
        _chat_chunk([{"index": 0, "delta": {"tool_calls": [near]}}]),
        _chat_chunk([{"index": 0, "delta": {"tool_calls": [far]}, "finish_reason": "stop"}]),
        _sse("[DONE]"),
    ]
    response = run("/v1/chat/completions", SSE, chunks)
    (call,) = response.body["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "g"}
    assert response.error is not None and "tool call index 20000000" in response.error
    assert response.finish_reasons == ["stop"]


def test_a_content_index_far_ahead_is_left_out_not_followed() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": _response("in_progress", [], None)}),
        ("response.output_item.added", {"output_index": 0, "item": {"id": "i", "content": []}}),
        ("response.content_part.added", {"output_index": 0, "content_index": 5_000_000,
                                         "part": {"type": "output_text", "text": ""}}),
        ("response.content_part.added", {"output_index": 0, "content_index": -1,
                                         "part": {"type": "output_text", "text": ""}}),
    ]  # fmt: skip
    chunks = [_sse({"type": kind, **data}, event=kind) for kind, data in events]
    response = run("/v1/responses", SSE, chunks)
    assert response.body["output"] == [{"id": "i", "content": []}]
    assert response.error is not None and "ended before" in response.error


def test_an_anthropic_index_that_is_not_an_integer_is_ignored() -> None:
    events = messages_stream_events("answer")
    odd = {"type": "content_block_delta", "index": [0], "delta": {"type": "text_delta"}}
    stop = {"type": "content_block_stop", "index": {"a": 1}}
    chunks = [*events[:3], _sse(odd, event="content_block_delta"), _sse(stop), *events[3:]]
    assert run("/v1/messages", SSE, chunks).body == run("/v1/messages", SSE, events).body


DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000


def test_a_json_body_nested_too_deeply_is_dropped_and_said() -> None:
    response = run("/v1/chat/completions", "application/json", [DEEP], status=200)
    assert response.body is None and response.status == 200
    assert response.error == "the body was not kept: the JSON nests too deeply to be read"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
def test_a_stream_event_nested_too_deeply_is_left_out_and_said(path: str) -> None:
    chunks = {
        "/v1/chat/completions": chat_stream_chunks("answer", include_usage=True),
        "/v1/responses": responses_stream_events("answer"),
        "/v1/messages": messages_stream_events("answer"),
    }[path]
    # The deep event comes first, so the path is what says which API answered.
    response = run(path, SSE, [b"data: " + DEEP + b"\n\n", *chunks])
    assert response.usage is not None
    if path != "/v1/responses":  # a final response is whole: nothing is missing from it
        assert response.error == (
            "an event was left out of the body: the JSON nests too deeply to be read"
        )


def test_a_tool_input_nested_too_deeply_is_kept_as_text() -> None:
    events = messages_stream_events("tools")
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    piece = {"type": "content_block_delta", "index": 0,
             "delta": {"type": "input_json_delta", "partial_json": deep}}  # fmt: skip
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    start = {"type": "content_block_start", "index": 0, "content_block": block}
    stop = {"type": "content_block_stop", "index": 0}
    chunks = [*events[:2], *(_sse(e) for e in (start, piece, stop)), events[-1]]
    response = run("/v1/messages", SSE, chunks)
    assert response.body["content"][0]["input"] == deep
    assert response.error == "the tool input of content block 0 is not valid JSON"


def test_a_delta_nested_as_deep_as_orjson_reads_is_merged_without_recursing() -> None:
    deep = b'{"a":' * 1020 + b"1" + b"}" * 1020
    first = _chat_chunk([{"index": 0, "delta": {"content": "x"}}])
    chunk = json.loads(first[len("data: ") :])
    chunk["choices"][0]["delta"] = {"extra": "@"}
    second = ("data: " + json.dumps(chunk)).encode().replace(b'"@"', deep) + b"\n\n"
    response = run("/v1/chat/completions", SSE, [first, second, second, _sse("[DONE]")])
    assert response.body is None  # MongoDB stores 179 levels: the body cannot be kept
    assert response.error is not None and "nests deeper than" in response.error


def test_fields_read_outside_the_body_are_bounded() -> None:
    # A hostile stream: hundreds of choices with long finish reasons, a huge model.
    reason = "r" * 1000
    choices = [{"index": i, "delta": {}, "finish_reason": reason} for i in range(300)]
    model = "m" * 10_000
    error = {"type": "server_error", "message": "e" * 60_000}
    # In events of 30 choices: each is read whole (an event past 64 KiB is not).
    chunks = [_chat_chunk(choices[at : at + 30], model) for at in range(0, 300, 30)]
    chunks.append(_sse({"error": error}))
    response = run("/v1/chat/completions", SSE, chunks, max_bytes=1000)
    assert response.truncated and response.body is None
    assert len(response.finish_reasons) == 128
    assert response.finish_reasons[0] == "r" * 63 + "…"
    assert response.model == "m" * 255 + "…"
    assert response.error is not None and len(response.error) == 4096
    assert response.error.startswith("server_error: eee") and response.error.endswith("…")
    # What a record of it stores is small, whatever the stream's size.
    assert len(response.model_dump_json()) < 20_000
    given = run("/v1/chat/completions", SSE, chunks, error="x" * 100_000)
    assert given.error == "x" * 4095 + "…"


def test_a_json_body_over_the_limit_keeps_its_finish_reasons() -> None:
    body = chat_json("answer")
    body["choices"][0]["message"]["content"] = "x" * 200_000
    body["choices"][0]["finish_reason"] = "length"
    raw = json.dumps(body).encode()
    response = run("/v1/chat/completions", "application/json", [raw], max_bytes=50_000)
    assert response.truncated and response.finish_reasons == ["length"]
    message = messages_json("answer")
    message["content"][0]["text"] = "x" * 200_000
    raw = json.dumps(message).encode()
    response = run("/v1/messages", "application/json", [raw], max_bytes=50_000)
    assert response.truncated and response.finish_reasons == [message["stop_reason"]]
