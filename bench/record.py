"""The write path against the raw driver, on the same server, in the same run.

Usage::

    python bench/record.py                   # an embedded engine in a child process
    python bench/record.py --uri mongodb://...   # or MONGODB_URI: a real MongoDB

It measures, per round (medians over the rounds are printed), each pair of
sides in small blocks that take turns (``--block`` calls of ``insert_one``
and ``create``, 2,500 records of ``insert_many`` and the recorder), so that
the server's drift in speed falls on both alike:

- raw ``insert_one`` (the document built inline, ``_id`` made by the driver)
  against ``LLMClientRequest.objects.create`` with the same fields: wall time
  and client-process CPU (``time.process_time``) per record;
- raw ``insert_many`` of ready-made documents (batches of 500) against the
  recorder's sustained throughput (a producer awaiting ``arecord()``, which
  waits for room once five batches are queued, then ``flush()``), with client
  CPU per record (the recorder's includes validating and building each
  document, which the raw side was handed ready-made); and, as a
  diagnostic, the same recorder handed records whose check was made before
  the clock started: what a record costs beyond the check that must run on
  the caller's path;
- ``record()`` call latency on the caller's side (``perf_counter_ns``), at
  the same sustained rate, and again with the garbage collector paused
  during each call (a diagnostic: what the recorder itself costs);
- the recorder's memory (``tracemalloc``) with ``max_queue`` records waiting,
  and after twice as many were offered (``on_full="drop"``);
- what write-ahead costs: the recorder's throughput and client CPU with
  ``spill="always"`` against ``spill="on_failure"`` (the baseline, the same
  producer calling ``record()``, a spill file on the same disk in both), and
  the latency of ``await arecord()``, which under ``spill="always"`` returns
  once the record is fsynced. ``--spill-only`` runs just this part.

Each measure is made for records of the request alone and for records with
a 2 KB response (``--response none|2kb|both``, both by default): an
``LLMResponse`` built once, as an integration hands the recorder one per
call, and on the raw side its stored sub-document, ready-made.

The raw collection gets the same indexes as ``llm_client_requests``, so both
sides pay the same index maintenance. The server is in another process, so
``process_time`` counts the client's work only. Absolute figures describe the
machine and the server; the ratios are what the bench is for.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import gc
import logging
import os
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import bson
from bson import DBRef, ObjectId

import _markdown
from llmreq_mongo import LLMClient, LLMClientRequest, LLMResponse, Recorder, TokenUsage, init
from llmreq_mongo._capture import response_document
from llmreq_mongo._documents import (
    ValidatedRequest,
    encode_request,
    new_record_id,
    validate_request,
)
from llmreq_mongo._recording.options import SpillMode
from llmreq_mongo._time import now_ms
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import RecorderFull

__all__ = ["main"]

UTC = dt.timezone.utc

PAYLOAD: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a support assistant for an online shop."},
        {"role": "user", "content": "Where is my order 81723? It was due on Monday."},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
    "metadata": {"user": "u-1029", "tags": ["orders", "delivery"], "priority": 2},
}

#: A chat completion of about 2 KB, as a provider sends it back.
RESPONSE = LLMResponse(
    status=200,
    body={
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": (
                        "Your order 81723 left our warehouse on Friday and is with the carrier. "
                        * 24
                    ),
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 41, "completion_tokens": 420, "total_tokens": 461},
    },
    model="gpt-4o-2024-08-06",
    response_id="chatcmpl-bench",
    finish_reasons=["stop"],
    usage=TokenUsage(input_tokens=41, output_tokens=420, total_tokens=461),
    latency_ms=812.5,
)

Measure = tuple[float, float]  # (wall seconds, CPU seconds)


async def timed(work: Callable[[], Coroutine[Any, Any, None]]) -> Measure:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    await work()
    return time.perf_counter() - wall, time.process_time() - cpu


#: Records per timed block of the bulk measures: five batches of 500.
BULK_BLOCK = 2500


async def interleaved(
    sides: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]],
    blocks: int,
    number: int,
    *,
    before: dict[str, Callable[[], Coroutine[Any, Any, None]]] | None = None,
) -> dict[str, Measure]:
    """Each side's wall and CPU seconds summed over ``blocks`` blocks, the sides taking turns.

    The server's speed drifts, by up to five times within a round on the
    embedded engine (a Python server) as its collections grow and are
    emptied; in small blocks, alternately, the drift falls on both sides
    alike. The order of the sides is reversed every other block.
    ``before`` holds, per side, untimed work to run before each of its
    blocks.
    """
    totals = {side: (0.0, 0.0) for side, _ in sides}
    for block in range(blocks):
        for side, work in sides if (block + number) % 2 == 0 else sides[::-1]:
            if before is not None and side in before:
                await before[side]()
            wall, cpu = await timed(work)
            total_wall, total_cpu = totals[side]
            totals[side] = (total_wall + wall, total_cpu + cpu)
    return totals


async def record_latencies(
    client: LLMClient, count: int, *, gc_paused: bool, response: LLMResponse | None
) -> list[int]:
    """Caller-side ``record()`` latencies in ns, sorted, at a sustained rate.

    With ``gc_paused`` the cyclic garbage collector is off while a call runs:
    a diagnostic that separates the recorder's own work from the collector's
    pauses, which any allocation in the application can trigger.
    """
    latencies: list[int] = []
    clock = time.perf_counter_ns
    async with Recorder(max_batch=500, max_queue=2500, on_full="raise") as rec:
        while len(latencies) < count:
            if gc_paused:
                gc.disable()
            start = clock()
            try:
                rec.record(client, PAYLOAD, session_key="bench-latency", response=response)
            except RecorderFull:
                await rec.flush()  # a steady producer waits for the writer here
                continue
            finally:
                if gc_paused:
                    gc.enable()
            latencies.append(clock() - start)
            if len(latencies) % 100 == 0:
                await asyncio.sleep(0)  # the caller does other work too
        await rec.flush()
    latencies.sort()
    return latencies


async def fixed_work_latencies(count: int, p50_ns: float) -> list[int]:
    """The machine's own tail: fixed C work as long as ``record()``'s p50, timed as
    ``record()`` is, in the same loop; sorted, in ns.

    The work is ``bson.encode`` of the payload, repeated to last ``p50_ns``. Whatever
    ``record()`` does, its p99 is no better than this work's: preemption and
    interrupts hit any code that runs that long.
    """
    clock, encode = time.perf_counter_ns, bson.encode
    start = clock()
    for _ in range(1000):
        encode(PAYLOAD)
    repeat = max(1, round(p50_ns / ((clock() - start) / 1000)))
    latencies: list[int] = []
    while len(latencies) < count:
        start = clock()
        for _ in range(repeat):
            encode(PAYLOAD)
        latencies.append(clock() - start)
        if len(latencies) % 100 == 0:
            await asyncio.sleep(0)
    latencies.sort()
    return latencies


class _Prechecked(Recorder):
    """A recorder handed records already checked: the bench's diagnostic of all but the check.

    ``record()`` and ``arecord()`` take each check from ``checks`` in turn
    instead of checking their arguments, which must be the same as those
    the checks were made with.
    """

    def __init__(self, checks: list[ValidatedRequest], **options: Any) -> None:
        super().__init__(**options)
        self._checks = checks

    def _check(self, *args: Any, copy: bool, **fields: Any) -> ValidatedRequest:
        del args, copy, fields
        return self._checks.pop()


async def round_once(
    client: LLMClient,
    raw: Any,
    args: argparse.Namespace,
    number: int,
    response: LLMResponse | None = None,
) -> dict[str, float]:
    figures: dict[str, float] = {}
    ref = DBRef(client.get_collection_name(), client.id)
    single, bulk = args.single, args.bulk
    bulk_block = min(bulk, BULK_BLOCK)
    stored_response = None if response is None else response_document(response)

    async def raw_insert_one() -> None:
        for _ in range(args.block):
            now = dt.datetime.now(UTC)
            await raw.insert_one(
                {
                    "created_at": now,
                    "updated_at": now,
                    "llm_client": ref,
                    "llm_client_id": client.id,
                    "request": PAYLOAD,
                    "session_key": "bench-raw",
                    "is_aggregation": False,
                    "response": stored_response,
                }
            )

    async def create() -> None:
        for _ in range(args.block):
            await LLMClientRequest.objects.create(
                llm_client=client, request=PAYLOAD, session_key="bench-create", response=response
            )

    blocks = max(1, single // args.block)
    totals = await interleaved([("raw", raw_insert_one), ("lib", create)], blocks, number)
    for side, (wall, cpu) in totals.items():
        count = blocks * args.block
        figures[f"one_{side}_wall"], figures[f"one_{side}_cpu"] = wall / count, cpu / count

    def raw_documents() -> list[dict[str, Any]]:
        now = dt.datetime.now(UTC)
        return [
            {
                "_id": ObjectId(),
                "created_at": now,
                "updated_at": now,
                "llm_client": ref,
                "llm_client_id": client.id,
                "request": PAYLOAD,
                "session_key": "bench-raw-many",
                "is_aggregation": False,
                "response": stored_response,
            }
            for _ in range(bulk_block)
        ]

    documents: list[dict[str, Any]] = []

    async def raw_insert_many() -> None:
        for start in range(0, bulk_block, 500):
            await raw.insert_many(documents[start : start + 500], ordered=False)

    # A steady producer: it waits for room when 5 batches are queued. One
    # recorder for the round, as an application keeps one: each block is
    # timed from its first record to the flush that has them all written.
    # The third side is a diagnostic: the same recorder handed records whose
    # check was made before the clock started, so it costs all a record
    # costs but the check that must run on the caller's path.
    checks: list[ValidatedRequest] = []
    async with (
        Recorder(max_batch=500, max_queue=2500) as rec,
        _Prechecked(checks, max_batch=500, max_queue=2500) as prechecked,
    ):

        async def recorder() -> None:
            for _ in range(bulk_block):
                await rec.arecord(client, PAYLOAD, session_key="bench-recorder", response=response)
            await rec.flush()

        async def recorder_prechecked() -> None:
            for _ in range(bulk_block):
                await prechecked.arecord(
                    client, PAYLOAD, session_key="bench-recorder", response=response
                )
            await prechecked.flush()

        async def fresh_documents() -> None:
            documents[:] = raw_documents()  # built before the clock starts

        async def fresh_checks() -> None:
            checks[:] = [
                validate_request(
                    client,
                    PAYLOAD,
                    "bench-recorder",
                    False,
                    client_model=LLMClient,
                    response=response,
                    fit=False,
                    copy=False,
                )
                for _ in range(bulk_block)
            ]

        blocks = max(1, bulk // bulk_block)
        totals = await interleaved(
            [("raw", raw_insert_many), ("lib", recorder), ("unchecked", recorder_prechecked)],
            blocks,
            number,
            before={"raw": fresh_documents, "unchecked": fresh_checks},
        )
    for side, (wall, cpu) in totals.items():
        count = blocks * bulk_block
        figures[f"many_{side}_rate"], figures[f"many_{side}_cpu"] = count / wall, cpu / count

    # What the recorder's extra CPU is made of: checking and encoding a record,
    # as record() does (no copy: the encoding is the snapshot).
    gc.collect()
    cpu = time.process_time()
    for _ in range(bulk):
        checked = validate_request(
            client,
            PAYLOAD,
            "bench-build",
            False,
            client_model=LLMClient,
            response=response,
            fit=False,
            copy=False,
        )
        encode_request(checked, record_id=new_record_id(), now=now_ms())
    figures["build_cpu"] = (time.process_time() - cpu) / bulk

    for label, paused in (("", False), ("_nogc", True), ("_fixed", False)):
        if label == "_fixed":
            latencies = await fixed_work_latencies(bulk, figures["p50"] * 1000)
        else:
            latencies = await record_latencies(client, bulk, gc_paused=paused, response=response)
        figures[f"p50{label}"] = latencies[len(latencies) // 2] / 1000
        figures[f"p99{label}"] = latencies[int(len(latencies) * 0.99)] / 1000
        figures[f"p999{label}"] = latencies[int(len(latencies) * 0.999)] / 1000
    return figures


async def memory(
    client: LLMClient, max_queue: int, response: LLMResponse | None
) -> tuple[float, float, float]:
    """Bytes held per queued record, and peaks with max_queue and 2 x max_queue offered."""
    # Each drop is logged (bounded); the drops here are the point of the measure.
    logging.getLogger("llmreq_mongo.recorder").setLevel(logging.ERROR)
    async with Recorder(max_batch=500, max_queue=max_queue, on_full="drop") as rec:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        # No await in between: the writer cannot drain, the queue only fills.
        for _ in range(max_queue):
            rec.record(client, PAYLOAD, session_key="bench-memory", response=response)
        full = tracemalloc.get_traced_memory()[0] - base
        for _ in range(max_queue):
            rec.record(client, PAYLOAD, session_key="bench-memory", response=response)
        after = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert rec.stats.dropped == max_queue
        await rec.flush()
    return full / max_queue, full / 2**20, after / 2**20


async def spill_round(client: LLMClient, bulk: int, number: int) -> dict[str, float]:
    """One round of spill="on_failure" against spill="always", alternating which goes first."""
    figures: dict[str, float] = {}

    async def produce(mode: SpillMode) -> None:
        with tempfile.TemporaryDirectory() as folder:
            spill = Path(folder) / "bench.spill"
            async with Recorder(
                max_batch=500,
                max_queue=2500,
                spill_path=spill,
                spill=mode,
            ) as rec:
                for _ in range(bulk):
                    try:
                        rec.record(client, PAYLOAD, session_key="bench-spill")
                    except RecorderFull:
                        await rec.arecord(client, PAYLOAD, session_key="bench-spill")
                await rec.flush()

    pair: list[tuple[str, SpillMode]] = [("raw", "on_failure"), ("lib", "always")]
    for side, mode in reversed(pair) if number % 2 else pair:
        wall, cpu = await timed(functools.partial(produce, mode))
        figures[f"spill_{side}_rate"], figures[f"spill_{side}_cpu"] = bulk / wall, cpu / bulk

    for side, mode in pair:  # one awaited arecord() at a time: one fsync each under "always"
        with tempfile.TemporaryDirectory() as folder:
            async with Recorder(spill_path=Path(folder) / "b.spill", spill=mode) as rec:
                times = []
                for _ in range(500):
                    start = time.perf_counter_ns()
                    await rec.arecord(client, PAYLOAD, session_key="bench-spill")
                    times.append(time.perf_counter_ns() - start)
                await rec.flush()
        figures[f"arecord_{side}"] = statistics.median(times) / 1000
    return figures


def row(
    name: str,
    rounds: list[dict[str, float]],
    measure: str,
    scale: float,
    unit: str,
    target: str,
    *,
    lib_side: str = "lib",
) -> str:
    """One table row: medians of each side, and the median of the per-round ratios."""
    raw = statistics.median(r[measure.format("raw")] for r in rounds) * scale
    lib = statistics.median(r[measure.format(lib_side)] for r in rounds) * scale
    ratio = statistics.median(
        r[measure.format(lib_side)] / r[measure.format("raw")] for r in rounds
    )
    return f"| {name} | {raw:,.1f} {unit} | {lib:,.1f} {unit} | {ratio:.2f}x | {target} |"


async def run(args: argparse.Namespace) -> None:
    uri = args.uri or os.environ.get("MONGODB_URI")
    engine = None
    if not uri:
        engine = await EmbeddedMongo(process=True).start()
        uri = engine.uri
    database = f"llmreq_bench_{uuid.uuid4().hex[:8]}"
    handle = await init(uri, database=database)
    try:
        raw = handle.database["bench_raw_requests"]
        ours = LLMClientRequest.get_pymongo_collection()
        async for index in await ours.list_indexes():
            if index["name"] != "_id_":
                await raw.create_index(list(index["key"].items()), name=index["name"])
        client = await LLMClient.objects.create(name="bench-bot")
        if args.spill_only:
            await spill_round(client, 1000, 0)  # warm-up
            spill_rounds = []
            for number in range(args.rounds):
                figures = await spill_round(client, args.bulk, number)
                spill_rounds.append(figures)
                print(
                    f"round {number + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
                )
                await ours.delete_many({})
            print_spill(spill_rounds, args)
            return
        warm_up = argparse.Namespace(single=200, bulk=1000, block=50)
        await round_once(client, raw, warm_up, 0)
        choices: dict[str, list[LLMResponse | None]] = {
            "none": [None],
            "2kb": [RESPONSE],
            "both": [None, RESPONSE],
        }
        variants = choices[args.response]
        results = []
        for response in variants:
            label = "request alone" if response is None else "with a 2 KB response"
            rounds = []
            for number in range(args.rounds):
                figures = await round_once(client, raw, args, number, response)
                rounds.append(figures)
                print(
                    f"{label}, round {number + 1}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in figures.items())
                )
                await raw.delete_many({})
                await ours.delete_many({})
            results.append((label, rounds, await memory(client, args.max_queue, response)))
    finally:
        await handle.client.drop_database(database)
        await handle.close()
        if engine is not None:
            await engine.stop()

    fragment = _markdown.capture(args.markdown)
    where = "embedded engine (child process)" if engine is not None else "MONGODB_URI"
    for label, rounds, mem in results:
        print(
            f"\n{label}; server: {where}; {args.rounds} rounds, medians (ratio: the median of "
            f"the per-round ratios); {args.single} single inserts, {args.bulk} bulk records "
            "per round\n"
        )
        print_table(rounds, mem, args)
    fragment.write()


def print_table(
    rounds: list[dict[str, float]], mem: tuple[float, float, float], args: argparse.Namespace
) -> None:
    """The table of one variant (records with or without a response)."""
    us = 1e6
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    per_record, full_mib, after_mib = mem
    print("| measure | raw driver | llmreq-mongo | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for name, measure, scale, unit, target in (
        ("insert_one vs objects.create, client CPU per record", "one_{}_cpu", us, "µs", "≤ 1.10x"),
        ("insert_one vs objects.create, wall time per record", "one_{}_wall", us, "µs", "-"),
        ("insert_many (500) vs Recorder, records/s", "many_{}_rate", 1, "", "≥ 0.95x"),
        ("insert_many (500) vs Recorder, client CPU per record", "many_{}_cpu", us, "µs", "≤ 1.5x"),
    ):
        print(row(name, rounds, measure, scale, unit, target))
    print(
        f"| of which: validating and encoding a record (no I/O), CPU | | "
        f"{med['build_cpu'] * us:.1f} µs | | |"
    )
    print(
        row(
            "the same recorder handed records checked before the clock (diagnostic: all "
            "but the caller's-path check), client CPU per record",
            rounds,
            "many_{}_cpu",
            us,
            "µs",
            "",
            lib_side="unchecked",
        )
    )
    print(
        f"| record() latency p50 / p99 / p99.9 | | {med['p50']:.1f} / {med['p99']:.1f} / "
        f"{med['p999']:.1f} µs | | p99 < 20 µs |"
    )
    print(
        f"| the same, garbage collector paused (diagnostic) | | {med['p50_nogc']:.1f} / "
        f"{med['p99_nogc']:.1f} / {med['p999_nogc']:.1f} µs | | |"
    )
    tail = med["p99_fixed"] / med["p50_fixed"]  # what the machine adds to any p50
    print(
        f"| the machine's tail: fixed C work as long as record()'s p50 (diagnostic) | | "
        f"{med['p50_fixed']:.1f} / {med['p99_fixed']:.1f} / {med['p999_fixed']:.1f} µs | "
        f"p99/p50 {tail:.1f}x | |"
    )
    print(
        f"| memory with max_queue={args.max_queue:,} queued / after {2 * args.max_queue:,} "
        f"offered | | {full_mib:.1f} / {after_mib:.1f} MiB ({per_record:,.0f} B/record) | | "
        "bounded by max_queue |"
    )


def print_spill(rounds: list[dict[str, float]], args: argparse.Namespace) -> None:
    """The write-ahead table: "raw" is spill="on_failure", "lib" spill="always"."""
    fragment = _markdown.capture(args.markdown)
    print(
        f"\n{args.rounds} rounds of {args.bulk} records, medians (ratio: the median of the "
        "per-round ratios, always / on_failure)\n"
    )
    print('| measure | spill="on_failure" | spill="always" | ratio |')
    print("| --- | --- | --- | --- |")
    for name, measure, scale, unit in (
        ("records/s", "spill_{}_rate", 1, ""),
        ("client CPU per record", "spill_{}_cpu", 1e6, "µs"),
        ("await arecord() latency, one at a time (p50)", "arecord_{}", 1, "µs"),
    ):
        print(row(name, rounds, measure, scale, unit, "")[: -len(" |  |")] + " |")
    fragment.write()


def main() -> None:
    """Parse the command line and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--uri",
        help="a MongoDB to measure against (default: MONGODB_URI, "
        "else an embedded engine in a child process)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=2000, help="insert_one/create calls")
    parser.add_argument("--bulk", type=int, default=20000, help="records for the bulk measures")
    parser.add_argument(
        "--block",
        type=int,
        default=50,
        help="insert_one/create calls per timed block (the sides take turns block by block)",
    )
    parser.add_argument("--max-queue", type=int, default=20000, help="for the memory measure")
    parser.add_argument(
        "--response",
        choices=("none", "2kb", "both"),
        default="both",
        help="records of the request alone, with a 2 KB response, or both (default)",
    )
    parser.add_argument(
        "--spill-only", action="store_true", help='only spill="always" against "on_failure"'
    )
    _markdown.add_option(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
