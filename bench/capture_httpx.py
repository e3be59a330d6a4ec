"""RecordingTransport against bare httpx: what recording costs the client, per call.

Usage::

    python bench/capture_httpx.py                 # an embedded engine in a child process
    python bench/capture_httpx.py --uri mongodb://...   # or MONGODB_URI

The upstream is a bare ASGI app served by uvicorn on 127.0.0.1, in a child
process (its CPU is not the client's). It answers, as the APIs do:

- a 2 KB JSON chat completion to a 2 KB JSON request;
- a streamed chat completion of 100 events (with its final usage), each sent
  as its own body chunk.

The same calls are made with ``httpx.AsyncClient()`` over a bare
``AsyncHTTPTransport`` (the baseline) and over ``RecordingTransport`` wrapping
one (the recorder writing to MongoDB), in alternating rounds of the same
process. Printed, per case and side (medians over the rounds): the client's
latency p50 and p99 (request sent to body read), the time to first chunk of a
stream p50 and p99, and the client process's CPU per call
(``time.process_time``, the recorder's writer task and the ``flush()`` that
writes the round's records at its end included), then the recorded side's
ratios and differences against bare. The records are written at the end of
each round so that the database server, when it shares the machine (the
embedded engine does), takes no CPU from the calls being timed.

``measure()`` returns the rows, for a report that joins the server side's.
Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

import _markdown
from llmreq_mongo import LLMClient, Recorder, init
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.integrations.httpx import RecordingTransport

PIECE = "Paris, la Ville Lumière, "  # 25 characters, one non-ASCII
REQUEST = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Tell me about Paris. " * 95}],
}
BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
USAGE = {"prompt_tokens": 900, "completion_tokens": 97, "total_tokens": 997}


def json_answer() -> bytes:
    """A chat completion of about 2 KB."""
    message = {"role": "assistant", "content": PIECE * 76}
    body = {
        **BASE,
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": USAGE,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def stream_events(n: int) -> list[bytes]:
    """A streamed chat completion of ``n`` events, its usage in the last but one."""

    def sse(data: Any) -> bytes:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        return f"data: {text}\n\n".encode()

    delta = {"index": 0, "delta": {"content": PIECE}, "finish_reason": None}
    events = [sse({**BASE, "choices": [delta]}) for _ in range(n - 3)]
    events.append(sse({**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    events.append(sse({**BASE, "choices": [], "usage": USAGE}))
    events.append(sse("[DONE]"))
    return events


class Upstream:
    """The bare ASGI app the child process serves."""

    def __init__(self, chunks: int) -> None:
        self.answer = json_answer()
        self.events = stream_events(chunks)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stream = b'"stream": true' in body or b'"stream":true' in body
        kind = b"text/event-stream" if stream else b"application/json"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]}
        )
        if not stream:
            await send({"type": "http.response.body", "body": self.answer})
            return
        for event in self.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def serve(port: int, chunks: int) -> None:
    """The child process: uvicorn on 127.0.0.1:``port``."""
    import uvicorn

    uvicorn.run(
        Upstream(chunks), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


@asynccontextmanager
async def upstream(chunks: int) -> AsyncIterator[str]:
    """Run the upstream in a child process; yield its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(port), "--chunks", str(chunks)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(500):
                try:
                    await probe.get(url)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
        yield url
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 10)


async def json_call(http: httpx.AsyncClient, url: str) -> tuple[float, float | None, int]:
    start = time.perf_counter()
    response = await http.post(f"{url}/v1/chat/completions", json=REQUEST)
    await response.aread()
    return time.perf_counter() - start, None, 1


async def stream_call(http: httpx.AsyncClient, url: str) -> tuple[float, float | None, int]:
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    payload = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    async with http.stream("POST", f"{url}/v1/chat/completions", json=payload) as response:
        async for _ in response.aiter_raw():
            if first is None:
                first = time.perf_counter() - start
            chunks += 1
    return time.perf_counter() - start, first, chunks


Call = Callable[[httpx.AsyncClient, str], Awaitable[tuple[float, float | None, int]]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(
    http: httpx.AsyncClient, url: str, call: Call, calls: int, recorder: Recorder | None
) -> dict[str, float]:
    """``calls`` calls one after the other; their latencies and the CPU they took."""
    latencies, firsts, chunks = [], [], 0
    cpu = time.process_time()
    for _ in range(calls):
        latency, first, read = await call(http, url)
        latencies.append(latency)
        chunks += read
        if first is not None:
            firsts.append(first)
    if recorder is not None:
        await recorder.flush()  # the writing of these records is part of their cost
    cpu = time.process_time() - cpu
    return {
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "ttfc_p50_ms": percentile(firsts, 0.5) * 1000 if firsts else float("nan"),
        "ttfc_p99_ms": percentile(firsts, 0.99) * 1000 if firsts else float("nan"),
        "cpu_us": cpu / calls * 1e6,
        "chunks": chunks / calls,
    }


async def measure(
    *,
    calls: int = 300,
    rounds: int = 5,
    chunks: int = 100,
    uri: str | None = None,
) -> list[dict[str, Any]]:
    """Measure both sides; return one row per case and side, then one of ratios per case.

    Args:
        calls: calls per round and side.
        rounds: rounds per case (the sides alternate; medians are kept).
        chunks: events in the streamed answer.
        uri: the MongoDB the recorder writes to; by default MONGODB_URI, or
            an embedded engine in a child process.
    """
    uri = uri or os.environ.get("MONGODB_URI")
    engine = None
    if uri is None:
        engine = await EmbeddedMongo(process=True).start()
        uri = engine.uri
    handle = await init(uri, database=f"llmreq_bench_httpx_{os.getpid()}")
    rows: list[dict[str, Any]] = []
    try:
        bot = (await LLMClient.objects.get_or_create(name="bench-httpx"))[0]
        # The records of a round are written by the flush() at its end: their
        # CPU is counted, but the database server, when it shares the machine,
        # does not compete with the calls being timed.
        recorder = Recorder(max_batch=max(500, calls), flush_interval=3600.0)
        async with upstream(chunks) as url, recorder:
            bare = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport())
            recorded = httpx.AsyncClient(
                transport=RecordingTransport(
                    httpx.AsyncHTTPTransport(), recorder=recorder, llm_client=bot
                )
            )
            async with bare, recorded:
                for case, call in (
                    ("2 KB JSON", json_call),
                    (f"{chunks}-chunk stream", stream_call),
                ):
                    for http in (bare, recorded):  # warm the connections and the code
                        await one_round(http, url, call, 20, recorder)
                    runs: dict[str, list[dict[str, float]]] = {"bare": [], "recorded": []}
                    for _ in range(rounds):
                        runs["bare"].append(await one_round(bare, url, call, calls, None))
                        runs["recorded"].append(
                            await one_round(recorded, url, call, calls, recorder)
                        )
                    medians = {
                        side: {
                            k: statistics.median(r[k] for r in runs[side]) for k in runs[side][0]
                        }
                        for side in runs
                    }
                    for side in ("bare", "recorded"):
                        rows.append({"case": case, "side": side, **medians[side]})
                    b, r = medians["bare"], medians["recorded"]
                    rows.append(
                        {
                            "case": case,
                            "side": "recorded / bare",
                            "p50_ms": r["p50_ms"] / b["p50_ms"],
                            "p99_ms": r["p99_ms"] / b["p99_ms"],
                            "ttfc_p50_ms": r["ttfc_p50_ms"] / b["ttfc_p50_ms"],
                            "ttfc_p99_ms": r["ttfc_p99_ms"] / b["ttfc_p99_ms"],
                            "cpu_us": r["cpu_us"] / b["cpu_us"],
                            "chunks": r["chunks"],
                            "added_cpu_us": r["cpu_us"] - b["cpu_us"],
                            "added_ttfc_p99_ms": r["ttfc_p99_ms"] - b["ttfc_p99_ms"],
                        }
                    )
    finally:
        await handle.client.drop_database(handle.database.name)
        await handle.close()
        if engine is not None:
            await engine.stop()
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Print the rows as one Markdown table, then what recording added per case."""
    cells: list[list[str]] = []
    added: list[str] = []
    for row in rows:
        ratio = row["side"] == "recorded / bare"
        unit = "x" if ratio else ""
        stream = row["ttfc_p50_ms"] == row["ttfc_p50_ms"]  # not NaN: a stream
        ttfc = (
            [f"{row['ttfc_p50_ms']:.3f}{unit}", f"{row['ttfc_p99_ms']:.3f}{unit}"]
            if stream
            else ["-", "-"]
        )
        cpu = f"{row['cpu_us']:.2f}x" if ratio else f"{row['cpu_us']:.0f}"
        cells.append(
            [
                row["case"],
                row["side"],
                f"{row['p50_ms']:.3f}{unit}",
                f"{row['p99_ms']:.3f}{unit}",
                *ttfc,
                cpu,
                f"{row['chunks']:.1f}",
            ]
        )
        if ratio and row["chunks"] > 1:
            per_chunk = row["added_cpu_us"] / max(row["chunks"], 1.0)
            added.append(
                f"- {row['case']}: added CPU {row['added_cpu_us']:.0f} µs/call"
                f" ({per_chunk:.2f} µs per chunk read), ttfc p99 {row['added_ttfc_p99_ms']:+.3f} ms"
            )
        elif ratio:
            added.append(f"- {row['case']}: added CPU {row['added_cpu_us']:.0f} µs/call")
    header = ["case", "side", "p50 ms", "p99 ms", "ttfc p50 ms", "ttfc p99 ms", "CPU µs/call"]
    _markdown.table([*header, "chunks"], cells, right=2)
    print()
    print("\n".join(added))


def main() -> None:
    options = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    options.add_argument("--calls", type=int, default=300, help="calls per round and side")
    options.add_argument("--rounds", type=int, default=5)
    options.add_argument("--chunks", type=int, default=100)
    options.add_argument("--uri", help="a MongoDB (default: MONGODB_URI, or an embedded engine)")
    options.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the upstream's child
    _markdown.add_option(options)
    args = options.parse_args()
    if args.serve is not None:
        serve(args.serve, args.chunks)
        return
    rows = asyncio.run(
        measure(calls=args.calls, rounds=args.rounds, chunks=args.chunks, uri=args.uri)
    )
    fragment = _markdown.capture(args.markdown)
    print(f"{args.calls} calls x {args.rounds} rounds per side, medians over the rounds\n")
    print_rows(rows)
    fragment.write()


if __name__ == "__main__":
    main()
