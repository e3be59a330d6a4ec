"""Fixtures of the reliability suite: engines of its own, so fail points and
restarts never reach the other tests, and the table of figures printed at the end.

Set ``LLMREQ_RELIABILITY_FIGURES=path.json`` to keep the figures of a run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from _reliability import FIGURES, write_figures
from pymongo import AsyncMongoClient

from llmreq_mongo import Handle, init
from llmreq_mongo.embedded import EmbeddedMongo


@pytest.fixture(scope="module")
async def fault_engine() -> AsyncIterator[EmbeddedMongo]:
    """An in-process engine for one module, with fail points enabled (its default).

    The fault tests always run here, even when ``MONGODB_URI`` names a real
    MongoDB: fail points are server-wide and must not reach any other test.
    """
    async with EmbeddedMongo(port=0) as engine:
        yield engine


@pytest.fixture(scope="module")
async def control(
    fault_engine: EmbeddedMongo,
) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    """A separate client that arms and disarms fail points and counts what was stored."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(fault_engine.uri, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def fault_db(fault_engine: EmbeddedMongo) -> AsyncIterator[Handle]:
    """A fresh database on the fault engine, initialised by the library."""
    name = f"llmreq_rel_{uuid.uuid4().hex[:12]}"
    handle = await init(fault_engine.uri, database=name)
    try:
        yield handle
    finally:
        await handle.client.drop_database(name)
        await handle.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures of every scenario that ran."""
    if not FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability figures")
    header = (
        f"{'suite':<10} {'scenario':<34} {'att':>6} {'ack':>6} {'stored':>6} "
        f"{'dup':>4} {'lost':>4} {'unack+st':>8}  result"
    )
    write(header)
    for t in FIGURES:
        write(
            f"{t.suite:<10} {t.scenario:<34} {t.attempted:>6} {t.acknowledged:>6} "
            f"{t.stored:>6} {t.duplicated:>4} {t.lost:>4} {t.unacknowledged_stored:>8}  "
            f"{t.result} {t.errors or ''} {t.notes}"
        )
    path = os.environ.get("LLMREQ_RELIABILITY_FIGURES")
    if path:
        write_figures(path)
        write(f"figures written to {path}")
