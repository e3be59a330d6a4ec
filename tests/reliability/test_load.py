"""Load: 50 tasks creating and querying at once for a bounded time.

``LLMREQ_LOAD_SECONDS`` sets the duration (30 s by default). No operation may
fail, every acknowledged record must be there at the end (counted by each
task's own session key, not with a large ``$in``: docs/embedded-engine.md, §10), and the
memory the test process holds must stay flat: tracemalloc samples it twice a
second, and the second half of the run is compared with the first.

The embedded engine runs as a separate process here, so the measurement sees
only the library's memory (and the server gets a core of its own); with
``MONGODB_URI`` set, that server is used instead.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import pytest
from _reliability import EngineProcess, Tally

from llmreq_mongo import Handle, LLMClient, LLMClientRequest, init

TASKS = 50
SECONDS = float(os.environ.get("LLMREQ_LOAD_SECONDS", "30"))


@pytest.fixture(scope="module")
async def load_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri
        return
    engine = EngineProcess(tmp_path_factory.mktemp("load-store"))
    await engine.start()
    try:
        yield engine.uri
    finally:
        await engine.stop()


@pytest.fixture
async def load_db(load_uri: str) -> AsyncIterator[Handle]:
    name = f"llmreq_load_{uuid.uuid4().hex[:12]}"
    handle = await init(load_uri, database=name)
    try:
        yield handle
    finally:
        await handle.client.drop_database(name)
        await handle.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.slow
async def test_fifty_tasks_create_and_query(load_db: Handle) -> None:
    client = await LLMClient.objects.create(name="load")
    acked = [0] * TASKS
    errors: list[BaseException] = []
    short_reads = 0
    queries = 0
    create_ms: list[float] = []
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + SECONDS

    async def worker(task: int) -> None:
        nonlocal short_reads, queries
        key = f"load-{task}"
        last = None
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                began = time.perf_counter()
                last = await LLMClientRequest.objects.create(
                    llm_client=client,
                    request={
                        "model": "gpt-4o",
                        "messages": [{"role": "user", "content": f"task {task} message {n}"}],
                        "n": n,
                    },
                    session_key=key,
                )
                create_ms.append((time.perf_counter() - began) * 1000)
                acked[task] += 1
                if n % 5 == 0:
                    queries += 1
                    seen = await LLMClientRequest.objects.filter(session_key=key).count()
                    short_reads += seen < acked[task]
                if n % 10 == 0:
                    queries += 2
                    page = await LLMClientRequest.objects.for_session(key).page(size=20)
                    short_reads += len(page.items) < min(20, acked[task])
                    got = await LLMClientRequest.objects.get(pk=last.id)
                    short_reads += got.request != last.request
            except Exception as exc:
                errors.append(exc)

    async def sampler() -> None:
        start = time.monotonic()
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - start, tracemalloc.get_traced_memory()[0]))
            await asyncio.sleep(0.5)

    tracemalloc.start()
    try:
        began = time.monotonic()
        await asyncio.gather(sampler(), *(worker(t) for t in range(TASKS)))
        elapsed = time.monotonic() - began
    finally:
        tracemalloc.stop()

    stored = [
        await LLMClientRequest.objects.filter(session_key=f"load-{t}").count() for t in range(TASKS)
    ]
    lost = sum(max(0, a - s) for a, s in zip(acked, stored, strict=True))
    extra = sum(max(0, s - a) for a, s in zip(acked, stored, strict=True))
    # Skip the first few seconds (pools filling, caches warming) before comparing halves.
    steady = [m for t, m in samples if t >= min(3.0, SECONDS / 5)]
    half = len(steady) // 2
    first, second = steady[:half], steady[half:]
    first_mib = statistics.median(first) / 2**20 if first else 0.0
    second_mib = statistics.median(second) / 2**20 if second else 0.0
    peak_first = max(first, default=0) / 2**20
    peak_second = max(second, default=0) / 2**20
    total = sum(acked)
    Tally(
        "load",
        f"{TASKS} tasks x {SECONDS:g} s",
        "create + count/page/get",
        attempted=total + len(errors),
        acknowledged=total,
        stored=sum(stored),
        duplicated=extra,
        lost=lost,
        errors={type(e).__name__: 1 for e in errors},
        result="ok" if not errors and lost == 0 and short_reads == 0 else "FAILED",
        notes=(
            f"{total / elapsed:.0f} creates/s + {queries / elapsed:.0f} queries/s; "
            f"create p50 {_percentile(create_ms, 0.5):.1f} ms p99 "
            f"{_percentile(create_ms, 0.99):.1f} ms; traced memory median "
            f"{first_mib:.2f} -> {second_mib:.2f} MiB, peak {peak_first:.2f} -> "
            f"{peak_second:.2f} MiB ({len(samples)} samples)"
        ),
    ).file()

    assert errors == [], errors[:3]
    assert lost == 0
    assert extra == 0
    assert short_reads == 0
    assert total > TASKS
    assert len(first) >= 2
    # Flat: the second half holds at most 25 % (plus 1 MiB of slack) more than the first.
    assert second_mib <= first_mib * 1.25 + 1.0, (first_mib, second_mib)
