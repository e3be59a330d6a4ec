"""EmbeddedMongo: temporary and persistent stores, and the missing-extra error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
    with pytest.raises(InvalidInput, match="ttl_sweep_seconds"):
        EmbeddedMongo(process=True, ttl_sweep_seconds=1)
