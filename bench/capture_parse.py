"""Benchmark the response parser: what reading a response costs, per chunk and per call.

For each API, a 100-chunk stream (one event per chunk, as the providers send
them) and a 2 KB JSON body are fed to :class:`ResponseParser` ``--repeat``
times; the median time per stream, per chunk and for ``finish()`` is printed
(``finish()`` reads the chunks the parser still holds: all but the first of a
stream under 64 KiB).
The baseline, measured in the same run on the same bytes, is the least any
reader must do: split the events on blank lines and ``json.loads`` each
one's data. The ratio against it is the figure to compare across machines.

Also measured: the same stream re-cut into 1-byte-unaligned 61-byte chunks
(boundaries inside events and UTF-8 sequences), and a stream over
``max_bytes`` (the body dropped, usage still read).

    python bench/capture_parse.py --repeat 2000

Never part of the test run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import _markdown
from llmreq_mongo._capture import ResponseParser

SSE = "text/event-stream"
PIECE = "Paris, la Ville Lumière, "  # 25 characters, one non-ASCII


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {text}\n\n".encode()


def chat_stream(n: int) -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    chunks = [
        _sse(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": PIECE}, "finish_reason": None}],
                "usage": None,
            }
        )
        for _ in range(n - 3)
    ]
    chunks.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": 900, "completion_tokens": 97, "total_tokens": 997}
    chunks.append(_sse({**base, "choices": [], "usage": usage}))
    chunks.append(_sse("[DONE]"))
    return chunks


def responses_stream(n: int) -> list[bytes]:
    response = {"id": "resp_1", "object": "response", "status": "in_progress", "model": "gpt-4.1"}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    item = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant"}
    part = {"type": "output_text", "text": "", "annotations": []}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": {**response, "output": []}}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "content": []}}),
        ("response.content_part.added", {**where, "part": part}),
    ]
    events += [("response.output_text.delta", {**where, "delta": PIECE})] * (n - 4)
    done = {**item, "status": "completed", "content": [{**part, "text": PIECE * (n - 4)}]}
    usage = {"input_tokens": 900, "output_tokens": 97, "total_tokens": 997}
    final = {**response, "status": "completed", "output": [done], "usage": usage}
    events.append(("response.completed", {"response": final}))
    return [_sse({"type": kind, **data}, event=kind) for kind, data in events]


def messages_stream(n: int) -> list[bytes]:
    start: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 900, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    delta = {"index": 0, "delta": {"type": "text_delta", "text": PIECE}}
    events += [("content_block_delta", delta)] * (n - 5)
    events.append(("content_block_stop", {"index": 0}))
    events.append(
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 97}})
    )
    events.append(("message_stop", {}))
    return [_sse({"type": kind, **data}, event=kind) for kind, data in events]


def json_body() -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": PIECE * 76},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 97, "total_tokens": 997},
    }
    return json.dumps(body, ensure_ascii=False).encode()


def baseline(chunks: list[bytes]) -> None:
    """The floor: split events, json.loads each data payload."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *events, pending = pending.split(b"\n\n")
        for event in events:
            data = event.rpartition(b"data: ")[2]
            if data != b"[DONE]":
                json.loads(data)


def parse(path: str, content_type: str, chunks: list[bytes], max_bytes: int) -> float:
    """Feed every chunk, then finish; return the time finish() took, in µs."""
    parser = ResponseParser(path, content_type, max_bytes=max_bytes)
    for chunk in chunks:
        parser.feed(chunk)
    start = time.perf_counter_ns()
    parser.finish(status=200)
    return (time.perf_counter_ns() - start) / 1000


def median_us(run: Callable[[], object], repeat: int) -> float:
    return timings_us(run, repeat)[0]


def timings_us(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """The median and the fastest of ``repeat`` runs, in µs.

    On a shared machine the fastest run is the steadier figure; both are printed.
    """
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000, min(times) / 1000


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeat", type=int, default=1000)
    options.add_argument("--chunks", type=int, default=100)
    _markdown.add_option(options)
    args = options.parse_args()
    n, repeat = args.chunks, args.repeat
    limit = 4 * 1024 * 1024
    cases = [
        ("chat, stream", "/v1/chat/completions", SSE, chat_stream(n), limit),
        ("responses, stream", "/v1/responses", SSE, responses_stream(n), limit),
        ("messages, stream", "/v1/messages", SSE, messages_stream(n), limit),
    ]
    raw = b"".join(chat_stream(n))
    recut = [raw[i : i + 61] for i in range(0, len(raw), 61)]
    cases.append(("chat, stream in 61-byte cuts", "/v1/chat/completions", SSE, recut, limit))
    cases.append(("chat, stream over max_bytes", "/v1/chat/completions", SSE, chat_stream(n), 1024))
    body = json_body()
    cases.append(
        ("chat, 2 KB JSON body", "/v1/chat/completions", "application/json", [body], limit)
    )

    fragment = _markdown.capture(args.markdown)
    print(f"{n}-chunk streams, {repeat} runs: median (fastest), µs\n")
    rows = []
    for name, path, kind, chunks, max_bytes in cases:
        total, best = timings_us(lambda: parse(path, kind, chunks, max_bytes), repeat)  # noqa: B023
        finish = statistics.median(parse(path, kind, chunks, max_bytes) for _ in range(repeat))
        if kind == SSE:
            floor, floor_best = timings_us(lambda: baseline(chunks), repeat)  # noqa: B023
        else:
            floor, floor_best = timings_us(lambda: json.loads(b"".join(chunks)), repeat)  # noqa: B023
        size = sum(len(c) for c in chunks)
        count = len(chunks)
        rows.append(
            (
                name,
                size,
                count,
                f"{total:.1f} ({best:.1f})",
                f"{total / count:.2f} ({best / count:.2f})",
                f"{finish:.1f}",
                f"{floor:.1f} ({floor_best:.1f})",
                f"{best / floor_best:.2f}x",
            )
        )
    header = ["case", "bytes", "chunks", "total", "/chunk", "finish", "floor", "ratio"]
    _markdown.table(header, rows)
    print("\nratio: fastest parse over fastest floor (split events, json.loads each data)")
    fragment.write()


if __name__ == "__main__":
    main()
