"""Benchmark the read paths: session pages, a client's latest requests, analytics, rollups.

Seeds ``--records`` requests (raw ``insert_many`` in batches, with the
library's indexes in place) across ``--sessions`` sessions and ``--clients``
clients over 30 days, plus one long session for the deep-page case. Each
query then runs ``--repeat`` times through the library and the same command
through the raw driver on the same server, and the p50/p99 of both are
printed with their ratio (docs/embedded-engine.md, §12: compare, do not quote absolute
times as a property of the code). With ``--repeat 20`` the p99 is the
slowest run but one.

Without ``--uri`` it starts the embedded engine as a separate process
(``secantusd-py``), so the server does not share the benchmark's CPU time
slices in one interpreter.

    python bench/queries.py --records 100000
    python bench/queries.py --uri "mongodb://localhost:27017/?directConnection=true"

Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypedDict

from bson import DBRef, ObjectId
from pymongo import AsyncMongoClient

import _markdown
import llmreq_mongo
from llmreq_mongo import LLMClient, LLMClientRequest, aggregate_sessions, analytics
from llmreq_mongo._reports import analytics as an
from llmreq_mongo._reports import buckets

UTC = dt.timezone.utc


class Window(TypedDict):
    """The time window a report is asked for, passed on as ``**window``."""

    since: dt.datetime
    until: dt.datetime


DEEP_SESSION = "bench-long-session"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=None, help="default: records / 50")
    parser.add_argument("--clients", type=int, default=None, help="default: sessions / 10")
    parser.add_argument("--uri", default=None, help="a MongoDB to use instead of the engine")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10_000, help="documents per insert_many")
    parser.add_argument("--seed", type=int, default=7)
    _markdown.add_option(parser)
    args = parser.parse_args()
    args.sessions = args.sessions or max(1, args.records // 50)
    args.clients = args.clients or max(1, args.sessions // 10)
    return args


@contextlib.asynccontextmanager
async def server(uri: str | None) -> AsyncIterator[str]:
    if uri:
        yield uri
        return
    exe = shutil.which("secantusd-py") or str(
        __import__("pathlib").Path(sys.executable).with_name("secantusd-py")
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = tempfile.mkdtemp(prefix="llmreq-bench-")
    proc = await asyncio.create_subprocess_exec(
        exe,
        "--port",
        str(port),
        "--storage-path",
        store,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        probe: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri, serverSelectionTimeoutMS=30_000
        )
        await probe.admin.command("ping")
        await probe.close()
        yield uri
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=60)
        shutil.rmtree(store, ignore_errors=True)


async def seed(args: argparse.Namespace, db: Any) -> dict[str, Any]:
    rng = random.Random(args.seed)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start = now - dt.timedelta(days=30)
    client_ids = [ObjectId() for _ in range(args.clients)]
    await db.llm_clients.insert_many(
        [
            {
                "_id": cid,
                "created_at": start,
                "updated_at": start,
                "name": f"bench-{i}",
                "description": "",
                "metadata": {},
            }
            for i, cid in enumerate(client_ids)
        ]
    )
    owner = [client_ids[i % len(client_ids)] for i in range(args.sessions)]
    deep = max(1, args.records // 20)  # one long session: 5% of the records
    step = (now - start) / args.records
    coll = db.llm_client_requests
    began = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for i in range(args.records):
        if i % 20 == 0 and deep > 0:
            session, cid, deep = DEEP_SESSION, client_ids[0], deep - 1
        else:
            s = rng.randrange(args.sessions)
            session, cid = f"session-{s}", owner[s]
        when = start + step * i
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        turns = rng.randrange(1, 6)
        batch.append(
            {
                "_id": ObjectId(),
                "created_at": when,
                "updated_at": when,
                "llm_client": DBRef("llm_clients", cid),
                "llm_client_id": cid,
                "request": {
                    "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude"]),
                    "messages": [{"role": "user", "content": "hello"}] * turns,
                },
                "session_key": session,
                "is_aggregation": False,
            }
        )
        if len(batch) >= args.batch:
            await coll.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await coll.insert_many(batch, ordered=False)
    seconds = time.perf_counter() - began
    return {"now": now, "clients": client_ids, "seed_seconds": seconds}


Run = Callable[[], Awaitable[Any]]


async def clock(run: Run) -> float:
    began = time.perf_counter()
    await run()
    return (time.perf_counter() - began) * 1000


async def compare(ours: Run, raw: Run | None, repeat: int) -> tuple[list[float], list[float]]:
    """Time both, interleaved, so that load from elsewhere hits them alike."""
    await ours()  # warm-up: connection, plan cache
    if raw is not None:
        await raw()
    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        mine.append(await clock(ours))
        if raw is not None:
            theirs.append(await clock(raw))
    return mine, theirs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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


async def bench(args: argparse.Namespace, handle: llmreq_mongo.Handle) -> None:
    db = handle.database
    facts = await seed(args, db)
    coll = LLMClientRequest.get_pymongo_collection()
    now: dt.datetime = facts["now"]
    day: Window = {"since": now - dt.timedelta(days=1), "until": now}
    week: Window = {"since": now - dt.timedelta(days=7), "until": now}
    client = await LLMClient.get(facts["clients"][0])
    assert client is not None
    session = "session-1"

    async def raw_pipeline(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await (await coll.aggregate(pipeline)).to_list(None)

    history = LLMClientRequest.objects.for_session(session)
    long_history = LLMClientRequest.objects.for_session(DEEP_SESSION)
    # The deep page: walk the long session to about 80% of its length once,
    # in the largest pages (a cursor does not depend on the page size).
    deep_total = await long_history.count()
    depth = int(deep_total * 0.8) // 1000 * 1000
    after = None
    for _ in range(depth // 1000):
        page = await long_history.page(size=1000, after=after)
        after = page.next_cursor
    _, _, deep_pipeline = long_history._page_plan(50, after)
    _, _, first_pipeline = history._page_plan(50, None)
    latest = LLMClientRequest.objects.filter(llm_client=client).order_by("-created_at")
    _, _, latest_pipeline = latest._page_plan(50, None)

    cases: list[tuple[str, Run, Run | None]] = [
        (
            "session page 1 (50)",
            lambda: history.page(size=50),
            lambda: raw_pipeline(first_pipeline),
        ),
        (
            f"deep page at {depth:,} of {deep_total:,} (keyset)",
            lambda: long_history.page(size=50, after=after),
            lambda: raw_pipeline(deep_pipeline),
        ),
        (
            f"same depth with skip({depth:,}), raw",
            lambda: (
                coll.find({"session_key": DEEP_SESSION})
                .sort([("created_at", 1), ("_id", 1)])
                .skip(depth)
                .limit(50)
                .to_list()
            ),
            None,
        ),
        (
            "latest 50 of a client",
            lambda: latest.page(size=50),
            lambda: raw_pipeline(latest_pipeline),
        ),
        (
            "session_summaries(last day)",
            lambda: analytics.session_summaries(**day),
            lambda: raw_pipeline(
                an._sessions_pipeline(
                    llm_client=None, limit=100, group_by=None, order="recent", **day
                )
            ),
        ),
        (
            "top_sessions(n=10, last day)",
            lambda: analytics.top_sessions(n=10, **day),
            lambda: raw_pipeline(
                an._sessions_pipeline(
                    llm_client=None, limit=10, group_by=None, order="busiest", **day
                )
            ),
        ),
        (
            "request_counts(hour, last day)",
            lambda: analytics.request_counts(by="hour", **day),
            lambda: raw_pipeline(
                buckets._counts_pipeline(
                    by="hour", llm_client=None, session_key=None, tz="UTC", group_by=None, **day
                )[0]
            ),
        ),
        (
            "request_counts(day, a client, 7 days, by model)",
            lambda: analytics.request_counts(llm_client=client, group_by="model", **week),
            lambda: raw_pipeline(
                buckets._counts_pipeline(
                    by="day",
                    llm_client=client,
                    session_key=None,
                    tz="UTC",
                    group_by="model",
                    **week,
                )[0]
            ),
        ),
        (
            "client_usage(last day)",
            lambda: analytics.client_usage(**day),
            lambda: raw_pipeline(an._usage_pipeline(**day)),
        ),
    ]
    rows = []
    for label, ours, raw in cases:
        mine, theirs = await compare(ours, raw, args.repeat)
        rows.append((label, mine, theirs))

    began = time.perf_counter()
    first_run = await aggregate_sessions(**day)
    rollup_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    second_run = await aggregate_sessions(**day)
    rerun_ms = (time.perf_counter() - began) * 1000

    total = await coll.count_documents({})
    fragment = _markdown.capture(args.markdown)
    print(
        f"\n{args.records:,} records, {args.sessions:,} sessions, {args.clients:,} clients "
        f"({total:,} documents after rollups); seeded in {facts['seed_seconds']:.1f} s "
        f"({args.records / facts['seed_seconds']:,.0f} docs/s); {args.repeat} runs each\n"
    )
    print("| query | p50 ms | p99 ms | raw driver p50 ms | raw p99 ms | p50 ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, mine, theirs in rows:
        if not theirs:
            print(f"| {label} | {pct(mine, 0.5):.1f} | {pct(mine, 0.99):.1f} | | | |")
            continue
        ratio = pct(mine, 0.5) / pct(theirs, 0.5)
        print(
            f"| {label} | {pct(mine, 0.5):.1f} | {pct(mine, 0.99):.1f} | "
            f"{pct(theirs, 0.5):.1f} | {pct(theirs, 0.99):.1f} | {ratio:.2f}x |"
        )
    print(
        f"| aggregate_sessions(last day), first run: {first_run.created:,} created "
        f"| {rollup_ms:.1f} | (one run) | | | |"
    )
    print(
        f"| aggregate_sessions(last day), again: {second_run.unchanged:,} unchanged "
        f"| {rerun_ms:.1f} | (one run) | | | |"
    )
    ratios = [pct(m, 0.5) / pct(t, 0.5) for _, m, t in rows if t]
    print(f"\nmedian of the p50 ratios: {statistics.median(ratios):.2f}x")
    fragment.write()


if __name__ == "__main__":
    asyncio.run(main())
