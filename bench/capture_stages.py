"""What each stage of recording a call costs, alone: the parts of ``bench/capture.py``'s
"over the floor" column.

For the payloads of ``bench/capture.py`` (a 2 KB chat request, a 2 KB chat
completion, a 100-chunk stream), each stage is timed on its own in one process,
``timeit`` style (the minimum of 7 runs; the collector is off while a run is timed,
so these are the stages' own costs):

- reading the request: the body parsed as the middleware parses it, and the payload
  walk ``record()`` makes;
- reading the response: the parser fed a JSON body and finished, the body's decoding
  alone, and a 100-chunk stream per chunk;
- recording: ``record()`` of the request with and without the response (checking,
  encoding, queueing; the writes are not timed).

A second column times each stage with cold caches: one call at a time, each
after the CPU's caches were filled with other data (a 32 MiB buffer written and
200,000 objects read), the median of 200. A server on a busy machine runs
each call so, between other processes and its own event loop: the warm figure
is what the code costs, the cold one what a call costs a server like the one
of ``bench/capture.py``.

Usage::

    python bench/capture_stages.py                      # an embedded engine
    python bench/capture_stages.py --uri mongodb://...  # or MONGODB_URI

Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import timeit
import uuid
from collections.abc import Callable
from typing import Any

import _markdown
from capture import bare_app, json_answer, request_body, stream_answer
from llmreq_mongo import LLMClient, LLMResponse, Recorder, init
from llmreq_mongo._capture import ResponseParser
from llmreq_mongo._capture.decode import loads
from llmreq_mongo._queries import is_plain
from llmreq_mongo.integrations._session_keys import parse_json_body
from llmreq_mongo.integrations.asgi import LLMRequestLogger

__all__ = ["main"]


def best(work: Callable[[], Any], number: int, per: int = 1) -> float:
    """The fastest of 7 runs of ``number`` calls, in µs per call (divided by ``per``)."""
    return min(timeit.repeat(work, number=number, repeat=7)) / number * 1e6 / per


_BUFFER = bytearray(32 * 1024 * 1024)
_OBJECTS = [{"n": n} for n in range(200_000)]


def _evict_caches() -> None:
    """Fill the CPU's caches with other data (see the module docstring)."""
    _BUFFER[::64] = bytes(len(_BUFFER) // 64)
    total = 0
    for item in _OBJECTS:
        total += item["n"]


def cold(work: Callable[[], Any], number: int = 200) -> float:
    """The median CPU time of ``work``, in µs, each call timed alone after evicting caches."""
    times = []
    for _ in range(number):
        _evict_caches()
        start = time.process_time_ns()
        work()
        times.append(time.process_time_ns() - start)
    return statistics.median(times) / 1e3


def call_once(app: Any, body: bytes) -> Callable[[], None]:
    """One JSON call to the ASGI ``app``, run to its end at once (nothing in it waits)."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"user-agent", b"python-httpx"),
    ]

    async def send(message: Any) -> None:
        pass

    def work() -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "headers": list(headers),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Any:
            return messages.pop()

        call = app(scope, receive, send)
        try:
            call.send(None)
        except StopIteration:
            return
        raise RuntimeError("the call waited: it cannot be timed alone")

    return work


def parse_json(answer: bytes) -> LLMResponse:
    parser = ResponseParser("/v1/chat/completions", "application/json")
    parser.feed(answer)
    return parser.finish(status=200)


def parse_stream(events: list[bytes]) -> LLMResponse:
    parser = ResponseParser("/v1/chat/completions", "text/event-stream")
    for event in events:
        parser.feed(event)
    return parser.finish(status=200)


async def run(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        uri = args.uri
        if uri is None:
            from llmreq_mongo.embedded import EmbeddedMongo

            uri = (await stack.enter_async_context(EmbeddedMongo(process=True))).uri
        handle = await init(uri, database=f"bench_stages_{uuid.uuid4().hex[:8]}")
        stack.push_async_callback(handle.close)
        stack.push_async_callback(handle.client.drop_database, handle.database.name)
        client = await LLMClient.objects.create(name="bench-stages")
        body, answer, events = request_body(), json_answer(), stream_answer()
        payload, response = parse_json_body(body), parse_json(answer)
        stages: list[tuple[str, Callable[[], Any], int, int]] = [
            (
                "request: parse the 2 KB body, and vouch for it (parse_json_body)",
                lambda: parse_json_body(body),
                2000,
                1,
            ),
            (
                "request: the walk of record() (is_plain), skipped when vouched for",
                lambda: is_plain(payload),
                2000,
                1,
            ),
            ("response: parser feed + finish, 2 KB JSON body", lambda: parse_json(answer), 2000, 1),
            ("of which decoding the body", lambda: loads(answer), 2000, 1),
            (
                "response: a 100-chunk stream, per chunk",
                lambda: parse_stream(events),
                200,
                len(events),
            ),
        ]
        recorder = await stack.enter_async_context(Recorder(max_queue=1_000_000))
        stages += [
            (
                "record(): the 2 KB request alone",
                lambda: recorder.record(client, payload, session_key="s"),
                2000,
                1,
            ),
            (
                "record(): the 2 KB request and the 2 KB response",
                lambda: recorder.record(client, payload, session_key="s", response=response),
                2000,
                1,
            ),
        ]
        bare = bare_app()
        logged = LLMRequestLogger(bare, recorder=recorder, llm_client=client)
        stages.insert(0, ("the timer alone (nothing timed)", lambda: None, 2000, 1))
        stages += [
            ("a JSON call to the bare app", call_once(bare, body), 2000, 1),
            ("the same call through LLMRequestLogger", call_once(logged, body), 2000, 1),
        ]
        rows = [
            [name, f"{best(work, number, per):.1f}", f"{cold(work) / per:.1f}"]
            for name, work, number, per in stages
        ]
        await recorder.flush()
    fragment = _markdown.capture(args.markdown)
    print(
        "Stages alone, CPU per call (per chunk for the stream): warm, the fastest of 7 runs;"
        " cold, the median of 200 calls each after evicting caches:\n"
    )
    _markdown.table(["stage", "warm µs", "cold µs"], rows)
    fragment.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    _markdown.add_option(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
