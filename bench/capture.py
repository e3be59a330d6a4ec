"""What recording a call's response costs a server: a bare ASGI app against the same app
wrapped by ``LLMRequestLogger``, each served by uvicorn on 127.0.0.1 in its own process.

Usage::

    python bench/capture.py                      # an embedded engine in a child process
    python bench/capture.py --uri mongodb://...  # or MONGODB_URI: a real MongoDB
    python bench/capture.py --profile out.prof   # cProfile the capture="response" server

Four servers run the same app: ``bare`` (no middleware), ``driver`` (the floor: the
bare app, and for each call one ready-made document written by the raw driver, in
batches of what arrived within the recorder's ``flush_interval``, as the recorder
batches), ``request`` (``capture="request"``) and ``response``
(``capture="response"``, the default), the last two with a real
:class:`~llmreq_mongo.Recorder` writing to MongoDB. One client, over keep-alive
connections, makes the calls in turn to each server, so a disturbance on the machine
falls on all four alike, for two workloads:

- ``json``: a 2 KB JSON request answered by a 2 KB JSON chat completion;
- ``stream``: the same request answered by a 100-chunk event stream (one chat
  completion chunk per ``http.response.body`` message, the last with usage).

Per round it reads the latency the client sees (p50, p99), the time to the first body
chunk, and each server's CPU time per call, from the kernel's count for the server
process (``/proc/<pid>/task/*/schedstat``, nanoseconds): parsing, recording and the
recorder's writes in that process included, the database's own work not. The table
gives the median over the rounds, the difference and ratio against the bare app of the
same run, the difference against the driver floor (what recording costs beyond the
driver's own writes), and the targets.

Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

import _markdown

__all__ = ["SECTIONS", "main", "print_table", "server_side"]

PATH = "/v1/chat/completions"
KINDS = ("bare", "driver", "request", "response")
CHUNKS = 100
PIECE = "Paris, la Ville Lumière, "

#: A table: its title, its header, its rows (every cell already a string).
Table = tuple[str, list[str], list[list[str]]]
#: A part of the report: given the command line, it measures and returns its tables.
Section = Callable[[argparse.Namespace], Awaitable[list[Table]]]


def request_body() -> bytes:
    """A 2 KB chat-completions request."""
    turns = [{"role": "system", "content": "You are a support assistant for an online shop."}]
    n = 0
    while len(json.dumps({"model": "gpt-4o", "messages": turns})) < 2000:
        turns.append({"role": "user", "content": f"Question {n}: where is my order 8172{n}?"})
        n += 1
    return json.dumps({"model": "gpt-4o", "messages": turns, "session_key": "bench"}).encode()


def json_answer() -> bytes:
    """A 2 KB chat completion."""
    text = (PIECE * 80)[:1700]
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1764590000,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 512, "completion_tokens": 400, "total_tokens": 912},
        },
        ensure_ascii=False,
    ).encode()


def stream_answer() -> list[bytes]:
    """A chat completion streamed in ``CHUNKS`` events, one per chunk, as OpenAI sends it."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764590000}
    base["model"] = "gpt-4o-2024-08-06"

    def event(data: Any) -> bytes:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        return f"data: {text}\n\n".encode()

    def choice(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": reason}

    events = [event({**base, "choices": [choice({"role": "assistant", "content": ""})]})]
    events += [
        event({**base, "choices": [choice({"content": PIECE})], "usage": None})
        for _ in range(CHUNKS - 4)
    ]
    events.append(event({**base, "choices": [choice({}, "stop")], "usage": None}))
    usage = {"prompt_tokens": 512, "completion_tokens": CHUNKS - 4, "total_tokens": 608}
    events.append(event({**base, "choices": [], "usage": usage}))
    events.append(event("[DONE]"))
    return events


# -- the server side (a child process) ------------------------------------------------------


def bare_app() -> Callable[..., Awaitable[None]]:
    """The app measured: reads the request, answers with ready-made bytes."""
    answer = json_answer()
    events = stream_answer()
    json_head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    sse_head = [(b"content-type", b"text/event-stream; charset=utf-8")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        if (b"x-stream", b"1") not in scope["headers"]:
            await send({"type": "http.response.start", "status": 200, "headers": json_head})
            await send({"type": "http.response.body", "body": answer})
            return
        await send({"type": "http.response.start", "status": 200, "headers": sse_head})
        for chunk in events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def driver_app(app: Callable[..., Awaitable[None]], uri: str, database: str) -> Any:
    """``app``, with one ready-made document per call written by the raw driver.

    What any recorder costs at least: no reading, no checking, no encoding on the
    request's path, and the writes batched over the recorder's ``flush_interval``.
    """
    import inspect

    from bson import ObjectId
    from pymongo import AsyncMongoClient

    from llmreq_mongo import Recorder

    linger = inspect.signature(Recorder).parameters["flush_interval"].default
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    collection = client[database]["driver_floor"]
    request, answer = json.loads(request_body()), json.loads(json_answer())
    waiting: list[dict[str, Any]] = []
    wake = asyncio.Event()

    async def writer() -> None:
        while True:
            await wake.wait()
            await asyncio.sleep(linger)
            wake.clear()
            batch = waiting[:]
            del waiting[:]
            await collection.insert_many(batch, ordered=False)

    task: asyncio.Task[None] | None = None

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        nonlocal task
        if task is None:
            task = asyncio.create_task(writer())
        await app(scope, receive, send)
        waiting.append({"_id": ObjectId(), "request": request, "response": answer})
        wake.set()

    return wrapped


async def serve(args: argparse.Namespace) -> None:
    """Run one server (``--serve KIND``) until SIGINT; print its port once listening."""
    import uvicorn

    from llmreq_mongo import LLMClient, Recorder, init
    from llmreq_mongo.integrations.asgi import LLMRequestLogger

    app = bare_app()
    async with contextlib.AsyncExitStack() as stack:
        if args.serve == "driver":
            app = driver_app(app, args.uri, args.database)
        elif args.serve != "bare":
            await init(args.uri, database=args.database)
            client, _ = await LLMClient.objects.get_or_create(name="bench-capture")
            recorder = await stack.enter_async_context(Recorder())
            app = LLMRequestLogger(app, recorder=recorder, llm_client=client, capture=args.serve)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", access_log=False, log_level="warning"
        )
        server = uvicorn.Server(config)
        profiler = None
        if args.profile:
            import cProfile

            # CPU time, not wall time: on a busy machine a process waiting for a core
            # would otherwise be charged for the wait.
            profiler = cProfile.Profile(time.process_time)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()  # it failed to start: say why
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        if profiler is not None:
            profiler.enable()
        try:
            await task
        finally:  # uvicorn raises the SIGINT it caught again once it has stopped
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)


def cpu_ns(pid: int) -> int:
    """The CPU time of every thread of process ``pid`` so far, in nanoseconds."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that has just ended
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total


@contextlib.asynccontextmanager
async def server(kind: str, args: argparse.Namespace) -> AsyncIterator[tuple[int, int]]:
    """A server process of ``kind``; yields its pid and port, stops it with SIGINT."""
    command = [sys.executable, __file__, "--serve", kind, "--uri", args.uri]
    command += ["--database", args.database]
    if args.profile and kind == "response":
        command += ["--profile", args.profile]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        if not line.startswith("PORT "):
            raise SystemExit(f"the {kind} server did not start: {line!r}")
        yield process.pid, int(line.split()[1])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            await process.wait()


async def one_call(web: httpx.AsyncClient, body: bytes, stream: bool) -> tuple[float, float]:
    """One call as the client sees it: (latency, time to the first body chunk), in seconds."""
    headers = {"content-type": "application/json", "x-stream": "1" if stream else "0"}
    start = time.perf_counter()
    first = None
    async with web.stream("POST", PATH, content=body, headers=headers) as response:
        async for _ in response.aiter_raw():
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    return end - start, (first or end) - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_round(
    servers: dict[str, tuple[int, httpx.AsyncClient]], body: bytes, stream: bool, calls: int
) -> dict[str, dict[str, float]]:
    """``calls`` calls to each server, in turn; per server: p50/p99 latency and TTFC, CPU."""
    seen: dict[str, list[tuple[float, float]]] = {kind: [] for kind in servers}
    before = {kind: cpu_ns(pid) for kind, (pid, _) in servers.items()}
    for n in range(calls):
        order = list(servers)[n % len(servers) :] + list(servers)[: n % len(servers)]
        for kind in order:
            seen[kind].append(await one_call(servers[kind][1], body, stream))
    await asyncio.sleep(0.3)  # the recorders write what they were given
    figures: dict[str, dict[str, float]] = {}
    for kind, (pid, _) in servers.items():
        latencies = [latency for latency, _ in seen[kind]]
        firsts = [first for _, first in seen[kind]]
        figures[kind] = {
            "latency_p50": percentile(latencies, 0.5) * 1e6,
            "latency_p99": percentile(latencies, 0.99) * 1e6,
            "first_p50": percentile(firsts, 0.5) * 1e6,
            "first_p99": percentile(firsts, 0.99) * 1e6,
            "cpu": (cpu_ns(pid) - before[kind]) / calls / 1e3,
        }
    return figures


def _us(value: float) -> str:
    return f"{value:,.1f} µs"


async def server_side(args: argparse.Namespace) -> list[Table]:
    """The server side: bare app, capture="request", capture="response", under uvicorn."""
    body = request_body()
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, tuple[int, httpx.AsyncClient]] = {}
        for kind in KINDS:
            pid, port = await stack.enter_async_context(server(kind, args))
            web = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)
            servers[kind] = (pid, await stack.enter_async_context(web))
        rounds: dict[str, list[dict[str, dict[str, float]]]] = {"json": [], "stream": []}
        for workload, calls in (("json", args.calls), ("stream", args.stream_calls)):
            await measure_round(servers, body, workload == "stream", 50)  # warm-up
            for _ in range(args.rounds):
                rounds[workload].append(
                    await measure_round(servers, body, workload == "stream", calls)
                )

    def median(workload: str, kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in rounds[workload])

    def added(workload: str, kind: str, key: str, over: str = "bare") -> float:
        return statistics.median(r[kind][key] - r[over][key] for r in rounds[workload])

    header = ["measure", "bare", "driver floor", "request", "response", "added"]
    header += ["over the floor", "ratio", "target", "met"]
    rows: list[list[str]] = []
    labels = {
        "cpu": "server CPU per call",
        "latency_p50": "client latency p50",
        "latency_p99": "client latency p99",
        "first_p50": "first chunk p50",
        "first_p99": "first chunk p99",
    }
    for workload in ("json", "stream"):
        for key, label in labels.items():
            if workload == "json" and key.startswith("first"):
                continue  # one chunk: the first is the last
            extra = added(workload, "response", key)
            base = median(workload, "bare", key)
            target, met = "", ""
            if key == "cpu" and workload == "json":
                target, met = "≤ 100 µs added", "yes" if extra <= 100 else "NO"
            if key == "first_p99" and workload == "stream":
                target, met = "≤ 1 ms later", "yes" if extra <= 1000 else "NO"
            rows.append(
                [
                    f"{workload}: {label}",
                    _us(base),
                    _us(median(workload, "driver", key)),
                    _us(median(workload, "request", key)),
                    _us(median(workload, "response", key)),
                    _us(extra),
                    _us(added(workload, "response", key, over="driver")),
                    f"{median(workload, 'response', key) / base:.2f}x" if base else "-",
                    target,
                    met,
                ]
            )
        if workload == "stream":
            per_chunk = added("stream", "response", "cpu") / CHUNKS
            over_floor = added("stream", "response", "cpu", over="driver") / CHUNKS
            rows.append(
                [
                    "stream: added server CPU per chunk (whole call / 100)",
                    "",
                    "",
                    "",
                    "",
                    _us(per_chunk),
                    _us(over_floor),
                    "",
                    "≤ 5 µs",
                    "yes" if per_chunk <= 5 else "NO",
                ]
            )
    title = (
        f"Server side: uvicorn on 127.0.0.1, medians of {args.rounds} rounds of "
        f"{args.calls} JSON and {args.stream_calls} streamed calls per server"
    )
    return [(title, header, rows)]


#: The parts of the report, in order. The client side (``RecordingTransport`` against
#: bare httpx, from bench/capture_httpx.py) is added here as one more :data:`Section`.
SECTIONS: list[Section] = [server_side]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print one table as Markdown (the one place a table is rendered, ``--markdown`` too)."""
    print(f"\n{title}:\n")
    _markdown.table(header, rows)


async def run(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if args.uri is None:
            from llmreq_mongo.embedded import EmbeddedMongo

            engine = await stack.enter_async_context(EmbeddedMongo(process=True))
            args.uri = engine.uri
        fragment = _markdown.capture(args.markdown)
        print(f"load average at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        for section in SECTIONS:
            for title, header, rows in await section(args):
                print_table(title, header, rows)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        fragment.write()
    if args.profile:
        import pstats

        print(f"\nThe capture='response' server's CPU by function ({args.profile}):")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--database", default=f"bench_capture_{uuid.uuid4().hex[:8]}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400, help="JSON calls per server per round")
    parser.add_argument("--stream-calls", type=int, default=150, help="streamed calls, the same")
    parser.add_argument("--profile", help="cProfile the capture='response' server into this file")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    _markdown.add_option(parser)
    args = parser.parse_args()
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
