"""Stored size of a request record and its index entries, and what they add up to per day.

Usage::

    python bench/sizing.py                      # an embedded engine in a child process
    python bench/sizing.py --uri mongodb://...  # or MONGODB_URI: a real MongoDB

For three shapes of record (a small chat request, a large one, and a small
one with a response-sized extra payload) it stores ``--records`` records the
way the library does, in a collection with the library's indexes plus the
shard key's, and reads ``collStats``: the data bytes per record
(``avgObjSize``), and per index the bytes per entry (``indexSizes`` over the
count). It prints them next to the BSON size of one document, then the
storage, index size and working set per day at 10, 1,000 and 10,000 calls
per second, and the shards each rate needs at the per-shard budget below.

The embedded engine reports logical sizes: ``storageSize`` equals the
uncompressed data size, and index sizes are its own estimate of the key
bytes. mongod's WiredTiger compresses data (snappy by default) and
prefix-compresses index keys, so its figures come out smaller; run with
``--uri`` against a real MongoDB to measure those.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import uuid
from typing import Any

import bson
from bson import ObjectId
from pymongo import AsyncMongoClient

import _markdown
from llmreq_mongo import LLMClient, LLMClientRequest, init
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo._sharding import SHARD_INDEX_NAME, SHARD_KEY
from llmreq_mongo._time import now_ms
from llmreq_mongo.embedded import EmbeddedMongo

#: The per-shard budget the shard counts assume (a stated budget, not a measurement).
DISK_BUDGET = 2 * 1024**4  # 2 TiB of data and indexes per shard
CACHE_BUDGET = 32 * 1024**3  # 32 GiB of WiredTiger cache (a 64 GiB machine)
WRITES_BUDGET = 5_000  # sustained majority-acknowledged inserts per second per shard
RETENTION_DAYS = 30
RATES = (10, 1_000, 10_000)
DAY = 86_400


def _text(words: int, seed: int) -> str:
    vocabulary = [
        "the",
        "order",
        "was",
        "late",
        "and",
        "the",
        "customer",
        "asked",
        "for",
        "a",
        "refund",
        "of",
        "the",
        "full",
        "amount",
    ]
    return " ".join(vocabulary[(seed + i) % len(vocabulary)] for i in range(words))


def small_chat(i: int) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": _text(25, i)},
        ],
        "temperature": 0.2,
    }


def large_chat(i: int) -> dict[str, Any]:
    turns = [
        {"role": "user" if t % 2 == 0 else "assistant", "content": _text(120, i + t)}
        for t in range(20)
    ]
    return {"model": "gpt-4o", "messages": turns, "temperature": 0.7, "max_tokens": 1024}


def with_response(i: int) -> dict[str, Any]:
    request = small_chat(i)
    request["response"] = {
        "id": f"chatcmpl-{uuid.UUID(int=i)}",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": _text(300, i)}}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 400, "total_tokens": 460},
    }
    return request


SHAPES = {"small chat": small_chat, "large chat": large_chat, "chat + response": with_response}


async def measure(client: AsyncMongoClient[Any], shape: str, records: int) -> dict[str, Any]:
    name = f"llmreq_sizing_{uuid.uuid4().hex[:8]}"
    await init(client, database=name)
    try:
        coll = LLMClientRequest.get_pymongo_collection()
        await coll.create_index(list(SHARD_KEY.items()), name=SHARD_INDEX_NAME)
        bot = await LLMClient.objects.create(name="sizing-bot")
        build = SHAPES[shape]
        docs = []
        for i in range(records):
            session = None if i % 10 == 0 else f"{uuid.UUID(int=i // 8 + 1).hex}"
            checked = validate_request(bot, build(i), session, False, client_model=LLMClient)
            docs.append(request_document(checked, record_id=ObjectId(), now=now_ms()))
        for start in range(0, records, 500):
            await coll.insert_many(docs[start : start + 500], ordered=False)
        stats = await client[name].command("collStats", coll.name)
        count = int(stats["count"])
        return {
            "bson": len(bson.encode(docs[1])),
            "data": stats["size"] / count,
            "storage": stats["storageSize"] / count,
            "indexes": {k: v / count for k, v in stats["indexSizes"].items()},
            "index_total": stats["totalIndexSize"] / count,
        }
    finally:
        await client.drop_database(name)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1024
    raise AssertionError


def report(figures: dict[str, dict[str, Any]]) -> None:
    print("#### Per record (measured)\n")
    print("| shape | BSON bytes | data bytes/record | index bytes/record | per index |")
    print("|---|---|---|---|---|")
    for shape, f in figures.items():
        indexes = sorted(f["indexes"].items())
        per_index = ", ".join(f"{k} {v:.0f}" for k, v in indexes)
        print(
            f"| {shape} | {f['bson']:,} | {f['data']:,.0f} | {f['index_total']:,.0f} | "
            f"{per_index} |"
        )
    print(
        f"\n#### Per day, and shards for {RETENTION_DAYS} days kept\n\n"
        f"Budget per shard: {_size(DISK_BUDGET)} of data and indexes, {_size(CACHE_BUDGET)} "
        f"of cache, {WRITES_BUDGET:,} inserts/s. Working set, strict: every index of the "
        "retained days (MongoDB's rule that indexes fit in RAM) plus one hour of records. "
        "Recent: one day of index entries plus one hour of records (reads are of recent "
        "sessions).\n"
    )
    print(
        "| shape | calls/s | records/day | data/day | indexes/day "
        f"| data+indexes, {RETENTION_DAYS} d | working set strict / recent "
        "| shards strict / recent |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape, f in figures.items():
        for rate in RATES:
            per_day = rate * DAY
            data, index = per_day * f["storage"], per_day * f["index_total"]
            kept = RETENTION_DAYS * (data + index)
            hour = rate * 3600 * f["storage"]
            strict, recent = RETENTION_DAYS * index + hour, index + hour
            floor = max(1, math.ceil(kept / DISK_BUDGET), math.ceil(rate / WRITES_BUDGET))
            print(
                f"| {shape} | {rate:,} | {per_day:,} | {_size(data)} | {_size(index)} | "
                f"{_size(kept)} | {_size(strict)} / {_size(recent)} | "
                f"{max(floor, math.ceil(strict / CACHE_BUDGET))} / "
                f"{max(floor, math.ceil(recent / CACHE_BUDGET))} |"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--records", type=int, default=2_000)
    _markdown.add_option(parser)
    args = parser.parse_args()
    engine = None
    uri = args.uri
    if not uri:
        engine = EmbeddedMongo(process=True)
        await engine.start()
        uri = engine.uri
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    try:
        figures = {}
        for shape in SHAPES:
            figures[shape] = await measure(client, shape, args.records)
        where = "embedded engine" if engine else "MONGODB_URI"
        fragment = _markdown.capture(args.markdown)
        print(f"server: {where}, {args.records:,} records per shape\n")
        report(figures)
        fragment.write()
    finally:
        await client.close()
        if engine is not None:
            await engine.stop()


if __name__ == "__main__":
    asyncio.run(main())
