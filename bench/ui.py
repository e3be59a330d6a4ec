"""Benchmark the history browser: render time of its pages, and their weight.

Seeds ``--records`` chat requests, each with its response (default 100,000),
through the raw driver's ``insert_many``, each document built by the library's own
``validate_request``/``request_document`` so it is exactly what the recorder
stores, across ``--clients`` clients and sessions of about 50 calls, plus one
500-call and one 50-call session, over 30 days. Then, ``--repeat`` times,
interleaved:

- each page (``/``, ``/sessions``, the 500-call session) through the ASGI app
  in-process (routing, the reads, the template, no network);
- the same reads through the library's own calls (``analytics``,
  ``session_page``, ``for_session(...).page()``, the client names), which is
  what the page cannot avoid.

It prints the p50 of both and their ratio, then the weight of the 50-call
session page: its HTML and every file it loads, and how many of its
references leave the page's origin (the target: none, and under 150 KB).

Without ``--uri`` it starts the embedded engine as a separate process, as
``bench/queries.py`` does (docs/embedded-engine.md, §12: compare, do not quote
absolute times as a property of the code).

    python bench/ui.py
    python bench/ui.py --records 20000 --repeat 5

Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from bson import ObjectId
from fastapi import FastAPI

import _markdown
import llmreq_mongo
from llmreq_mongo import LLMClient, LLMClientRequest, analytics
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._reports.session_pages import session_page
from llmreq_mongo._time import now_ms
from llmreq_mongo.integrations.fastapi import history_ui
from queries import server

LONG_SESSION = "bench-500-calls"
MEDIUM_SESSION = "bench-50-calls"
WORDS = (
    "the",
    "a",
    "model",
    "answer",
    "question",
    "cache",
    "index",
    "page",
    "session",
    "token",
    "latency",
    "request",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--calls-per-session", type=int, default=50)
    parser.add_argument("--uri", default=None, help="a MongoDB to use instead of the engine")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=5_000, help="documents per insert_many")
    parser.add_argument("--seed", type=int, default=7)
    _markdown.add_option(parser)
    return parser.parse_args()


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 30))).capitalize() + "."


def _conversation(
    rng: random.Random, client: LLMClient, key: str, calls: int, start: dt.datetime
) -> list[dict[str, Any]]:
    """One chat session as a client records it: every call resends the conversation."""
    docs = []
    messages: list[dict[str, str]] = [{"role": "system", "content": "You answer briefly."}]
    for i in range(calls):
        messages = [*messages, {"role": "user", "content": _sentence(rng)}]
        # Keep the payload bounded as real clients do (they trim old turns).
        sent = messages[:1] + messages[-12:]
        payload = {"model": rng.choice(["gpt-4o", "gpt-4o-mini"]), "messages": sent}
        answer = _sentence(rng)
        checked = validate_request(
            client, payload, key, False, client_model=LLMClient, response=_response(rng, answer)
        )
        at = start + dt.timedelta(seconds=20 * i)
        docs.append(request_document(checked, record_id=ObjectId(), now=at))
        messages = [*messages, {"role": "assistant", "content": answer}]
    return docs


def _response(rng: random.Random, answer: str) -> dict[str, Any]:
    """The chat completion a call got: ``answer``, with usage and timings."""
    message = {"role": "assistant", "content": answer}
    body = {
        "id": f"chatcmpl-{rng.getrandbits(64):x}",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340},
    }
    return {
        "status": 200,
        "body": body,
        "model": body["model"],
        "response_id": body["id"],
        "finish_reasons": ["stop"],
        "usage": {"input_tokens": 300, "output_tokens": 40, "total_tokens": 340},
        "latency_ms": rng.uniform(300, 3000),
    }


async def seed(args: argparse.Namespace) -> float:
    rng = random.Random(args.seed)
    now = now_ms()
    clients = [
        await LLMClient.objects.create(name=f"bench-{i}", description="benchmark client")
        for i in range(args.clients)
    ]
    coll = LLMClientRequest.get_pymongo_collection()
    began = time.perf_counter()
    batch: list[dict[str, Any]] = []
    written = 0

    async def flush() -> None:
        nonlocal batch, written
        if batch:
            await coll.insert_many(batch, ordered=False)
            written += len(batch)
            batch = []

    recent = now - dt.timedelta(hours=3)
    batch += _conversation(rng, clients[0], LONG_SESSION, 500, recent)
    batch += _conversation(rng, clients[0], MEDIUM_SESSION, 50, recent)
    n = 0
    while written + len(batch) < args.records:
        calls = min(args.calls_per_session, args.records - written - len(batch))
        start = now - dt.timedelta(days=30) * rng.random() - dt.timedelta(hours=1)
        batch += _conversation(rng, clients[n % len(clients)], f"session-{n}", calls, start)
        n += 1
        if len(batch) >= args.batch:
            await flush()
    await flush()
    print(f"seeded {written:,} records in {n + 2:,} sessions ({time.perf_counter() - began:.1f} s)")
    return time.perf_counter() - began


Run = Callable[[], Awaitable[Any]]


async def _clock(run: Run) -> float:
    began = time.perf_counter()
    await run()
    return (time.perf_counter() - began) * 1000


async def compare(page: Run, library: Run, repeat: int) -> tuple[float, float]:
    """The p50 of each, interleaved so that load from elsewhere hits both alike."""
    await page()
    await library()
    mine, theirs = [], []
    for _ in range(repeat):
        mine.append(await _clock(page))
        theirs.append(await _clock(library))
    return statistics.median(mine), statistics.median(theirs)


async def _names() -> dict[ObjectId, str]:
    found = await LLMClient.objects.order_by("name").limit(500).to_list()
    return {ObjectId(c.id): c.name for c in found}


async def bench(args: argparse.Namespace) -> None:
    await seed(args)
    app = FastAPI()
    app.include_router(history_ui(public=True))
    web = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")

    def get(path: str) -> Run:
        async def run() -> None:
            response = await web.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return run

    async def overview_reads() -> None:
        until = now_ms()
        since = until - dt.timedelta(days=7)
        await analytics.client_usage(since=since, until=until)
        await analytics.latency(by="client", since=since, until=until)
        await LLMClient.objects.order_by("name").limit(500).to_list()
        await analytics.request_counts(by="day", since=since, until=until)
        await analytics.latency(by="model", since=since, until=until)

    async def sessions_reads() -> None:
        await session_page(within=dt.timedelta(days=7), size=50)
        await _names()

    async def long_session_reads() -> None:
        await LLMClientRequest.objects.for_session(LONG_SESSION).page(size=500)
        await _names()

    cases = [
        ("/ (overview, 7 d)", get("/"), overview_reads),
        ("/sessions (50 of 7 d)", get("/sessions"), sessions_reads),
        ("/sessions/{key} (500 calls)", get(f"/sessions/{LONG_SESSION}"), long_session_reads),
    ]
    rows = []
    for label, page, library in cases:
        mine, theirs = await compare(page, library, args.repeat)
        rows.append((f"`{label}`", f"{mine:.1f} ms", f"{theirs:.1f} ms", f"{mine / theirs:.2f}x"))
    fragment = _markdown.capture(args.markdown)
    print(f"{args.records:,} records, {args.repeat} runs each\n")
    _markdown.table(["page", "page p50", "library p50", "ratio"], rows)

    html = (await web.get(f"/sessions/{MEDIUM_SESSION}")).text
    refs = re.findall(r'(?:href|src)="([^"]*)"', html)
    files = sorted({r for r in refs if "/static/" in r})
    weights = {f: len((await web.get(f)).content) for f in files}
    outside = [r for r in refs if re.match(r"^[a-z][a-z0-9+.-]*:|^//", r, re.I)]
    total = len(html.encode()) + sum(weights.values())
    print(f"\n50-call session page: HTML {len(html.encode()):,} bytes\n")
    for name, size in weights.items():
        print(f"- plus `{name}`: {size:,} bytes")
    print(f"- in all: {total:,} bytes ({total / 1024:.1f} KB; target under 150 KB)")
    print(f"- references leaving the origin: {len(outside)}")
    fragment.write()
    await web.aclose()


async def main() -> None:
    args = parse_args()
    async with server(args.uri) as uri:
        name = f"llmreq_bench_ui_{uuid.uuid4().hex[:8]}"
        handle = await llmreq_mongo.init(uri, database=name)
        try:
            await bench(args)
        finally:
            await handle.client.drop_database(name)
            await handle.close()


if __name__ == "__main__":
    asyncio.run(main())
