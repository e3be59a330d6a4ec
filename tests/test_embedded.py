"""EmbeddedMongo: temporary and persistent stores, and the missing-extra error."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

import llmreq_mongo
from llmreq_mongo import InvalidInput, LLMClient
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import ExtraMissing


async def test_persistent_store_survives_a_restart(tmp_path: Path) -> None:
    async with EmbeddedMongo(tmp_path / "data", durable=True) as engine:
        assert engine.uri.startswith("mongodb://")
        handle = await llmreq_mongo.init(engine.uri, database="keep")
        await LLMClient.objects.create(name="persisted")
        await handle.close()
    async with EmbeddedMongo(tmp_path / "data") as engine:
        handle = await llmreq_mongo.init(engine.uri, database="keep")
        assert [c.name for c in await LLMClient.objects.all().to_list()] == ["persisted"]
        await handle.close()


async def test_temporary_store_is_removed() -> None:
    engine = EmbeddedMongo()
    await engine.start()
    path = engine.path
    assert path.is_dir()
    await engine.stop()
    assert not path.exists()
    with pytest.raises(InvalidInput, match="not running"):
        _ = engine.uri


def test_bad_options_are_refused_at_construction() -> None:
    with pytest.raises(InvalidInput, match="port"):
        EmbeddedMongo(port=70000)
    with pytest.raises(InvalidInput, match="path"):
        EmbeddedMongo(path=3)  # type: ignore[arg-type]


async def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "secantus", None)  # what Python does for a missing module
    with pytest.raises(ExtraMissing, match=r"llmreq-mongo\[embedded\]") as caught:
        await EmbeddedMongo().start()
    assert caught.value.extra == "embedded"
    assert isinstance(caught.value, ImportError)


async def test_child_process_engine_restarts_on_its_port(tmp_path: Path) -> None:
    engine = EmbeddedMongo(tmp_path / "data", process=True)
    await engine.start()
    try:
        port = engine.port
        handle = await llmreq_mongo.init(engine.uri, database="restart")
        await LLMClient.objects.create(name="before")
        await engine.stop()
        await engine.start()
        assert engine.port == port
        # The same client reconnects by itself once the engine is back.
        await LLMClient.objects.create(name="after")
        names = sorted(c.name for c in await LLMClient.objects.all().to_list())
        assert names == ["after", "before"]
        await handle.close()
    finally:
        await engine.stop()


def test_child_process_refuses_options_it_cannot_pass() -> None:
    with pytest.raises(InvalidInput, match="max_connections"):
        EmbeddedMongo(process=True, max_connections=3)


async def test_stop_ends_the_accept_thread(tmp_path: Path) -> None:
    # Closing the listening socket alone leaves the thread blocked in accept()
    # for good on Linux (and the engine's stop waits 2 s for it).
    before = _accept_threads()
    engine = EmbeddedMongo(tmp_path / "data")
    await engine.start()
    assert _accept_threads() == before + 1
    await engine.stop()
    assert _accept_threads() == before
    # The store is closed cleanly: it opens again with what was written.
    async with EmbeddedMongo(tmp_path / "data") as again:
        handle = await llmreq_mongo.init(again.uri, database="reopen")
        assert await LLMClient.objects.count() == 0
        await handle.close()


def _accept_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "secantus-accept" and t.is_alive())


@pytest.mark.parametrize("process", [False, True], ids=["in-process", "child-process"])
async def test_ttl_sweep_interval_expires_documents(tmp_path: Path, process: bool) -> None:
    engine = EmbeddedMongo(tmp_path / "data", process=process, ttl_sweep_seconds=0.5)
    async with engine:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(engine.uri)
        try:
            docs = client["ttl"]["docs"]
            await docs.create_index("at", expireAfterSeconds=0)
            await docs.insert_many([{"at": dt.datetime.now(dt.timezone.utc)} for _ in range(3)])
            deadline = time.monotonic() + 30
            left = await docs.count_documents({})
            while left and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                left = await docs.count_documents({})
            assert left == 0
        finally:
            await client.close()


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_child_engine_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    code = (
        "import asyncio\n"
        "from llmreq_mongo.embedded import EmbeddedMongo\n"
        "async def main():\n"
        f"    engine = await EmbeddedMongo({str(tmp_path / 'data')!r}, process=True).start()\n"
        "    print(engine._child.pid, flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "LLMREQ_MONGODB_URI"}
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=environ)
    assert owner.stdout is not None
    child = int(owner.stdout.readline())
    owner.stdout.close()
    assert _running(child)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 15
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child), "the engine outlived its owner"

    # It closed the store: a new engine opens it.
    async def reopen() -> None:
        async with EmbeddedMongo(tmp_path / "data", process=True) as engine:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(engine.uri)
            assert (await client.admin.command("ping"))["ok"] == 1
            await client.close()

    asyncio.run(reopen())
