"""What the recorder's write concern costs: throughput at w:1, w:1 + j, and w:majority + j.

Usage::

    python bench/write_concern.py                      # an embedded engine in a child process
    python bench/write_concern.py --uri mongodb://...  # or MONGODB_URI: a real MongoDB

Each round records ``--records`` small chat requests through a ``Recorder``
on a client built with one write concern, then flushes; the figures are
medians over the rounds, with the ratio to ``w: 1`` measured in the same run.
On a single server (the embedded engine, a one-node replica set) "majority"
is the server itself, so what this shows there is the cost of the journal
flush; on a replica set or a cluster the majority wait adds a replication
round trip per batch, which only a run with ``--uri`` measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from pymongo import AsyncMongoClient

import _markdown
from llmreq_mongo import LLMClient, Recorder, init
from llmreq_mongo.embedded import EmbeddedMongo

CONCERNS: dict[str, dict[str, Any]] = {
    "w:1": {"w": 1},
    "w:1, j:true": {"w": 1, "journal": True},
    "w:majority, j:true": {"w": "majority", "journal": True},
}


async def one_round(uri: str, options: dict[str, Any], records: int) -> float:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, **options)
    name = f"llmreq_wc_{uuid.uuid4().hex[:8]}"
    try:
        await init(client, database=name)
        bot = await LLMClient.objects.create(name="wc-bot")
        request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        start = time.perf_counter()
        async with Recorder() as recorder:
            for i in range(records):
                await recorder.arecord(bot, request, session_key=f"s{i % 50}")
            await recorder.flush()
        return records / (time.perf_counter() - start)
    finally:
        await client.drop_database(name)
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    _markdown.add_option(parser)
    args = parser.parse_args()
    engine = None
    uri = args.uri
    if not uri:
        engine = EmbeddedMongo(process=True)
        await engine.start()
        uri = engine.uri
    try:
        rates: dict[str, list[float]] = {name: [] for name in CONCERNS}
        for _ in range(args.rounds):
            for name, options in CONCERNS.items():  # interleaved: drift hits all alike
                rates[name].append(await one_round(uri, options, args.records))
        base = statistics.median(rates["w:1"])
        where = "embedded engine" if engine else "MONGODB_URI"
        fragment = _markdown.capture(args.markdown)
        print(f"server: {where}; {args.records:,} records per round, {args.rounds} rounds\n")
        print("| write concern | records/s (median) | vs w:1 |")
        print("|---|---|---|")
        for name, values in rates.items():
            rate = statistics.median(values)
            print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")
        fragment.write()
    finally:
        if engine is not None:
            await engine.stop()


if __name__ == "__main__":
    asyncio.run(main())
