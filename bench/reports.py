"""Benchmark the reports over responses: latency percentiles, token sums with prices.

Seeds ``--records`` calls with responses (five models, lognormal latencies,
a third streamed, a tenth without usage, a twentieth failed) over one day,
then times, ``--repeat`` times each and interleaved:

- ``analytics.latency(by="model")`` (exact nearest-rank, computed from a
  sorted projection) against a baseline measured in the same run: one
  server-side ``$group`` with ``$percentile`` (MongoDB 7.0+, approximate),
  which does not leave the server. The largest relative difference between
  the two answers is printed too.
- ``analytics.client_usage(prices=...)`` (tokens, errors, cost, grouped per
  model underneath) against the requests-only pipeline it replaced
  (``$group`` by client and session, then by client), sent raw.

Times are p50/p99 in milliseconds with the ratio to the baseline
(docs/embedded-engine.md, §12: compare, do not quote absolute times).
Without ``--uri`` the embedded engine runs in its own process.

    python bench/reports.py --records 5000
    python bench/reports.py --uri "mongodb://localhost:27017/?directConnection=true"

Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict

from bson import DBRef, ObjectId

import _markdown
import llmreq_mongo
from llmreq_mongo import LLMClientRequest, analytics
from llmreq_mongo._capture import LLMResponse, response_document
from llmreq_mongo.analytics import Price
from llmreq_mongo.embedded import EmbeddedMongo

UTC = dt.timezone.utc


class Window(TypedDict):
    """The time window a report is asked for, passed on as ``**window``."""

    since: dt.datetime
    until: dt.datetime


MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022", "o3", "gemini-2.0-flash"]
PRICES = {
    "gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10.0),
    "gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.6),
    "claude-3-5-sonnet": Price(input_per_mtok=3.0, output_per_mtok=15.0),
}
Run = Callable[[], Awaitable[Any]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--uri", default=None, help="a MongoDB to use instead of the engine")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    _markdown.add_option(parser)
    return parser.parse_args()


@contextlib.asynccontextmanager
async def server(uri: str | None) -> AsyncIterator[str]:
    if uri:
        yield uri
        return
    async with EmbeddedMongo(process=True) as engine:
        yield engine.uri


def response(rng: random.Random) -> dict[str, Any]:
    model = rng.choice(MODELS)
    streamed = rng.random() < 1 / 3
    failed = rng.random() < 1 / 20
    reported = not failed and rng.random() >= 1 / 10
    fields: dict[str, Any] = {
        "status": 500 if failed else 200,
        "model": model,
        "stream": streamed,
        "latency_ms": round(rng.lognormvariate(6.5, 0.7), 3),
        "ttft_ms": round(rng.lognormvariate(5, 0.5), 3) if streamed else None,
        "usage": (
            {"input_tokens": rng.randrange(50, 5000), "output_tokens": rng.randrange(1, 800)}
            if reported
            else None
        ),
    }
    return response_document(LLMResponse(**fields))


async def seed(args: argparse.Namespace, db: Any) -> dt.datetime:
    rng = random.Random(args.seed)
    start = dt.datetime(2026, 3, 2, tzinfo=UTC)
    clients = [ObjectId() for _ in range(args.clients)]
    await db.llm_clients.insert_many(
        [
            {"_id": c, "name": f"bench-{i}", "description": "", "metadata": {}}
            for i, c in enumerate(clients)
        ]
    )
    step = dt.timedelta(days=1) / args.records
    batch: list[dict[str, Any]] = []
    for i in range(args.records):
        client = clients[i % len(clients)]
        when = start + step * i
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        batch.append(
            {
                "_id": ObjectId(),
                "created_at": when,
                "updated_at": when,
                "llm_client": DBRef("llm_clients", client),
                "llm_client_id": client,
                "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                "session_key": f"s{i % (args.records // 20 + 1)}",
                "is_aggregation": False,
                "response": response(rng),
            }
        )
        if len(batch) == 5000:
            await db.llm_client_requests.insert_many(batch)
            batch = []
    if batch:
        await db.llm_client_requests.insert_many(batch)
    return start


async def clock(run: Run) -> float:
    began = time.perf_counter()
    await run()
    return (time.perf_counter() - began) * 1000


async def compare(ours: Run, base: Run, repeat: int) -> tuple[list[float], list[float]]:
    """Time both, interleaved, so that load from elsewhere hits them alike."""
    await ours()
    await base()
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        mine.append(await clock(ours))
        theirs.append(await clock(base))
    return mine, theirs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, mine: list[float], base: list[float]) -> str:
    p50, b50 = pct(mine, 0.5), pct(base, 0.5)
    p99, b99 = pct(mine, 0.99), pct(base, 0.99)
    return (
        f"| {name} | {p50:,.1f} | {p99:,.1f} | {b50:,.1f} | {b99:,.1f} | "
        f"{p50 / b50:.2f}x | {p99 / b99:.2f}x |"
    )


async def bench(args: argparse.Namespace, handle: llmreq_mongo.Handle) -> None:
    start = await seed(args, handle.database)
    window: Window = {"since": start, "until": start + dt.timedelta(days=1)}
    coll = LLMClientRequest.get_pymongo_collection()
    match: list[dict[str, Any]] = [
        {"$match": {"created_at": {"$gte": window["since"], "$lt": window["until"]}}},
        {"$match": {"is_aggregation": False, "response.latency_ms": {"$type": "number"}}},
    ]

    async def server_percentile() -> list[dict[str, Any]]:
        spec = {"p": [0.5, 0.95, 0.99], "method": "approximate"}
        pipeline = [
            *match,
            {
                "$group": {
                    "_id": "$response.model",
                    "n": {"$sum": 1},
                    "lat": {"$percentile": {"input": "$response.latency_ms", **spec}},
                    "lat_max": {"$max": "$response.latency_ms"},
                    "ttft": {"$percentile": {"input": "$response.ttft_ms", **spec}},
                }
            },
        ]
        return await (await coll.aggregate(pipeline)).to_list(None)

    async def old_client_usage() -> list[dict[str, Any]]:
        pipeline = [
            match[0],
            {"$match": {"is_aggregation": False}},
            {
                "$group": {
                    "_id": {"c": "$llm_client_id", "s": "$session_key"},
                    "requests": {"$sum": 1},
                    "first_at": {"$min": "$created_at"},
                    "last_at": {"$max": "$created_at"},
                }
            },
            {
                "$group": {
                    "_id": "$_id.c",
                    "requests": {"$sum": "$requests"},
                    "sessions": {"$sum": 1},
                    "first_at": {"$min": "$first_at"},
                    "last_at": {"$max": "$last_at"},
                }
            },
            {"$sort": {"requests": -1, "_id": 1}},
            {
                "$lookup": {
                    "from": "llm_clients",
                    "localField": "_id",
                    "foreignField": "_id",
                    "as": "client",
                }
            },
        ]
        return await (await coll.aggregate(pipeline)).to_list(None)

    fragment = _markdown.capture(args.markdown)
    print(f"{args.records:,} calls with responses, {args.clients} clients, one day\n")
    print("| report | p50 ms | p99 ms | baseline p50 | baseline p99 | p50 ratio | p99 ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    approx: list[dict[str, Any]] | None
    try:
        approx = await server_percentile()
    except Exception as exc:  # a server before 7.0 has no $percentile
        approx = None
        print(f"(no $percentile on this server: {exc}; latency not compared)")
    else:
        mine, base = await compare(
            lambda: analytics.latency(by="model", **window), server_percentile, args.repeat
        )
        print(line("latency(by=model) vs $percentile", mine, base))
    mine, base = await compare(
        lambda: analytics.client_usage(prices=PRICES, **window), old_client_usage, args.repeat
    )
    print(line("client_usage(prices=) vs requests-only pipeline", mine, base))
    if approx is not None:
        exact = {r.key: r for r in await analytics.latency(by="model", **window)}
        worst = 0.0
        for row in approx:
            ours = exact[row["_id"]].latency_ms
            for value, theirs in zip((ours.p50, ours.p95, ours.p99), row["lat"], strict=True):
                assert value is not None
                worst = max(worst, abs(value - theirs) / value)
        print(f"\nlargest relative difference, nearest rank vs $percentile: {worst:.4%}")
    fragment.write()


async def main() -> None:
    args = parse_args()
    async with server(args.uri) as uri:
        name = f"llmreq_bench_{uuid.uuid4().hex[:8]}"
        handle = await llmreq_mongo.init(uri, database=name)
        try:
            await bench(args, handle)
        finally:
            await handle.client.drop_database(name)
            await handle.close()


if __name__ == "__main__":
    asyncio.run(main())
