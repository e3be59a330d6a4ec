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
import timeit
import uuid
from collections.abc import Callable
from typing import Any

import _markdown
from capture import json_answer, request_body, stream_answer
from llmreq_mongo import LLMClient, LLMResponse, Recorder, init
from llmreq_mongo._capture import ResponseParser
from llmreq_mongo._capture.decode import loads
from llmreq_mongo._queries import is_plain
from llmreq_mongo.integrations._session_keys import parse_json_body

__all__ = ["main"]


def best(work: Callable[[], Any], number: int, per: int = 1) -> float:
    """The fastest of 7 runs of ``number`` calls, in µs per call (divided by ``per``)."""
    return min(timeit.repeat(work, number=number, repeat=7)) / number * 1e6 / per


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
        rows = [
            [
                "request: parse the 2 KB body, and vouch for it (parse_json_body)",
                best(lambda: parse_json_body(body), 2000),
            ],
            [
                "request: the walk of record() (is_plain), skipped when vouched for",
                best(lambda: is_plain(payload), 2000),
            ],
            [
                "response: parser feed + finish, 2 KB JSON body",
                best(lambda: parse_json(answer), 2000),
            ],
            ["of which decoding the body", best(lambda: loads(answer), 2000)],
            [
                "response: a 100-chunk stream, per chunk",
                best(lambda: parse_stream(events), 200, per=len(events)),
            ],
        ]
        recorder = await stack.enter_async_context(Recorder(max_queue=1_000_000))
        rows += [
            [
                "record(): the 2 KB request alone",
                best(lambda: recorder.record(client, payload, session_key="s"), 2000),
            ],
            [
                "record(): the 2 KB request and the 2 KB response",
                best(
                    lambda: recorder.record(client, payload, session_key="s", response=response),
                    2000,
                ),
            ],
        ]
        await recorder.flush()
    fragment = _markdown.capture(args.markdown)
    print("Stages alone, CPU per call (per chunk for the stream), fastest of 7 runs:\n")
    _markdown.table(["stage", "µs"], [[name, f"{us:.1f}"] for name, us in rows])
    fragment.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    _markdown.add_option(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
