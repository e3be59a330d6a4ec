"""Benchmark the ``llmreq`` read commands on a store of ``--records`` requests.

Seeds the requests with the raw driver's ``insert_many`` in bulk, with the
documents the library itself stores (built by the same functions the
recorder uses, with the library's indexes in place), spread evenly over the
last ``--days`` days across ``--sessions`` sessions of ``--clients``
clients. Then each command runs ``--repeat`` times as the real ``llmreq``
process (``python -m llmreq_mongo``, what the console script runs) with its
default options, and the median wall time is printed beside its ratio to a
baseline measured in the same run: ``llmreq retention show``, which starts the process, connects and
sends one small command, so the ratio is what the command's own work costs
on top of starting up (ENGINE.md, gap 12: compare, do not quote absolute
times as a property of the code).

Without ``--uri`` it starts the embedded engine as a separate process
(``secantusd-py``), so the server does not share the benchmark's interpreter.

    python bench/cli.py --records 100000
    python bench/cli.py --uri "mongodb://localhost:27017/?directConnection=true"

Never part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from bson import ObjectId
from pymongo.errors import PyMongoError

import _markdown
import llmreq_mongo
from llmreq_mongo import LLMClient
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo.embedded import EmbeddedMongo

UTC = dt.timezone.utc

#: The commands measured, each with its default window (docs/cli.md, "Default windows").
COMMANDS: list[tuple[str, list[str]]] = [
    ("clients", ["clients"]),
    ("sessions", ["sessions"]),
    ("show <session>", ["show", "{session}"]),
    ("stats", ["stats"]),
    ("stats --by hour", ["stats", "--by", "hour"]),
    ("export -o -", ["export", "-o", "-"]),
    ("export --client -o -", ["export", "--client", "bench-1", "-o", "-"]),
    ("prune --dry-run", ["prune", "--older-than", "60d", "--dry-run"]),
]
BASELINE = ["retention", "show"]
#: Commands run with the CLI's own default --timeout instead of --timeout.
DEFAULT_TIMEOUT = {"export -o -", "export --client -o -"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=None, help="default: records / 25")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--days", type=int, default=90, help="spread over this many days")
    parser.add_argument("--uri", default=None, help="a MongoDB to use instead of the engine")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000, help="documents per insert_many")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--timeout",
        default="60",
        help="llmreq --timeout for the commands but export, which runs with the CLI's "
        "default (5 s): it reads in bounded windows, so no answer waits on the whole export",
    )
    parser.add_argument(
        "--only", default=None, help="measure only the commands whose label starts with this"
    )
    parser.add_argument(
        "--compare-python",
        default=None,
        help="also run export with this interpreter's llmreq (another checkout's venv), "
        "with --timeout, as a baseline in the same run",
    )
    _markdown.add_option(parser)
    args = parser.parse_args()
    args.sessions = args.sessions or max(1, args.records // 25)
    return args


@contextlib.asynccontextmanager
async def server(uri: str | None) -> AsyncIterator[str]:
    """``uri``, or the embedded engine in a child process for the run."""
    if uri:
        yield uri
        return
    async with EmbeddedMongo(process=True) as engine:
        yield engine.uri


def _chat(rng: random.Random, turns: int) -> dict[str, Any]:
    messages = [{"role": "system", "content": "Be brief."}]
    for n in range(turns):
        messages.append({"role": "user", "content": f"question {n}"})
        if n < turns - 1:
            messages.append({"role": "assistant", "content": f"answer {n}"})
    return {"model": rng.choice(["gpt-4o", "gpt-4o-mini"]), "messages": messages}


async def seed(args: argparse.Namespace, handle: llmreq_mongo.Handle) -> tuple[str, float]:
    """Store the records; returns the newest session's key and the seconds it took."""
    rng = random.Random(args.seed)
    clients = [
        await LLMClient.objects.create(name=f"bench-{i}", description="benchmark client")
        for i in range(args.clients)
    ]
    now = dt.datetime.now(UTC)
    start = now - dt.timedelta(days=args.days)
    step = (now - start) / args.records
    coll = handle.database["llm_client_requests"]
    turns: dict[int, int] = {}
    batch: list[dict[str, Any]] = []
    session = ""
    began = time.perf_counter()
    for i in range(args.records):
        # Sessions follow one another in time, as real ones do: each is a
        # short stretch of the whole span.
        s = i * args.sessions // args.records
        turns[s] = turns.get(s, 0) + 1
        session = f"session-{s:06d}"
        checked = validate_request(
            clients[s % len(clients)], _chat(rng, turns[s]), session, False, client_model=LLMClient
        )
        when = start + step * i
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        batch.append(request_document(checked, record_id=ObjectId(), now=when))
        if len(batch) >= args.batch:
            await coll.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await coll.insert_many(batch, ordered=False)
    return session, time.perf_counter() - began


def timed(
    uri: str,
    database: str,
    timeout: str | None,
    args: list[str],
    repeat: int,
    python: str = sys.executable,
) -> tuple[float, int]:
    """The median seconds of ``repeat`` runs of the real command, and its output size."""
    command = [python, "-m", "llmreq_mongo", "--uri", uri, "--database", database]
    if timeout is not None:
        command += ["--timeout", timeout]
    times = []
    size = 0
    for _ in range(repeat):
        began = time.perf_counter()
        proc = subprocess.run([*command, *args], capture_output=True, check=False, timeout=600)
        times.append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise SystemExit(f"llmreq {' '.join(args)} failed: {proc.stderr.decode()[:500]}")
        size = len(proc.stdout)
    return statistics.median(times), size


async def main() -> None:
    args = parse_args()
    async with server(args.uri) as uri:
        name = f"llmreq_bench_cli_{uuid.uuid4().hex[:8]}"
        handle = await llmreq_mongo.init(uri, database=name)
        try:
            newest, seconds = await seed(args, handle)
            print(
                f"seeded {args.records:,} requests, {args.sessions:,} sessions, "
                f"{args.clients} clients over {args.days} days in {seconds:.1f} s "
                f"({args.records / seconds:,.0f}/s, raw insert_many)",
                flush=True,
            )
            # The commands run in other processes: nothing here may hold the loop.
            base, _ = await asyncio.to_thread(timed, uri, name, args.timeout, BASELINE, args.repeat)
            fragment = _markdown.capture(args.markdown)
            print(
                f"{args.records:,} requests, {args.sessions:,} sessions, {args.clients} clients "
                f"over {args.days} days; medians of {args.repeat} runs\n"
            )
            rows: list[tuple[object, ...]] = [("`retention show` (base)", f"{base:.2f}", "1.0", "")]
            for label, command in COMMANDS:
                if args.only and not label.startswith(args.only):
                    continue
                filled = [part.format(session=newest) for part in command]
                timeout = None if label in DEFAULT_TIMEOUT else args.timeout
                took, size = await asyncio.to_thread(timed, uri, name, timeout, filled, args.repeat)
                rows.append((f"`{label}`", f"{took:.2f}", f"{took / base:.1f}", f"{size:,}"))
                if label in DEFAULT_TIMEOUT and args.compare_python:
                    took, size = await asyncio.to_thread(
                        timed, uri, name, args.timeout, filled, args.repeat, args.compare_python
                    )
                    rows.append(("(compared)", f"{took:.2f}", f"{took / base:.1f}", f"{size:,}"))
            _markdown.table(["command", "median s", "x baseline", "stdout bytes"], rows)
            fragment.write()
        finally:
            # The server may be gone (killed under memory pressure): the
            # figures are printed already, and its store is removed with it.
            with contextlib.suppress(PyMongoError):
                await handle.client.drop_database(name)
            await handle.close()


if __name__ == "__main__":
    asyncio.run(main())
