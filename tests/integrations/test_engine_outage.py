"""While MongoDB is down the app keeps answering, the records arrive once it is back, and
the history API answers 503 within its timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

import llmreq_mongo
from llmreq_mongo import LLMClient, LLMClientRequest, Recorder
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import ServerUnreachable
from llmreq_mongo.integrations.asgi import LLMRequestLogger
from llmreq_mongo.integrations.fastapi import history_router

CHAT = "/v1/chat/completions"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[EmbeddedMongo]:
    """An engine of this test's own, in a child process, so it can be stopped and restarted.

    The test stops and restarts a server, so it needs one it owns: with MONGODB_URI
    set, this still uses the embedded engine.
    """
    server = EmbeddedMongo(tmp_path / "data", process=True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_app_answers_while_the_engine_is_down_and_nothing_is_lost(
    engine: EmbeddedMongo,
) -> None:
    # init() binds the documents to this engine; the next test's llmreq_db binds them back.
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        engine.uri, tz_aware=True, serverSelectionTimeoutMS=2000
    )
    handle = await llmreq_mongo.init(mongo, database="outage")
    client = await LLMClient.objects.create(name="outage-bot")
    recorder = await Recorder(flush_interval=0.01, retry_deadline=120).start()
    try:
        app = FastAPI()

        @app.post(CHAT)
        async def complete(body: dict[str, Any]) -> dict[str, Any]:
            return {"echo": body["n"]}

        logged = LLMRequestLogger(app, recorder=recorder, llm_client=client)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=logged), base_url="http://testserver"
        ) as web:

            async def ask(n: int) -> int:
                response = await web.post(CHAT, json={"n": n}, headers={"x-session-key": "s"})
                assert response.status_code == 200
                return int(response.json()["echo"])

            assert [await ask(n) for n in range(5)] == list(range(5))
            await recorder.flush()
            assert recorder.stats.written == 5

            await engine.stop()
            # A hang here would mean the middleware waits on MongoDB; the bound only turns
            # such a hang into a failure instead of a stuck run.
            answered = await asyncio.wait_for(
                asyncio.gather(*(ask(n) for n in range(5, 45))), timeout=60
            )
            assert answered == list(range(5, 45))
            assert logged.stats.recorded == 45 and logged.stats.record_errors == 0
            assert recorder.stats.written == 5 and recorder.stats.queued == 40

            await engine.start()  # same port, same store
            await asyncio.wait_for(recorder.flush(), timeout=120)
        assert recorder.stats.written == 45
        coll = handle.database["llm_client_requests"]
        stored = await coll.find({"llm_client_id": client.id}, {"request.n": 1}).to_list(None)
        assert sorted(doc["request"]["n"] for doc in stored) == list(range(45))  # each once
    finally:
        await recorder.stop()
        await mongo.close()


HISTORY_URLS = [
    "/h/clients",
    "/h/sessions",
    "/h/sessions/s/requests",
    "/h/sessions/s/requests?client=history-bot",
    "/h/usage",
    "/h/usage/clients",
]


async def test_the_history_api_answers_503_in_bounded_time_while_the_engine_is_down(
    engine: EmbeddedMongo,
) -> None:
    handle = await llmreq_mongo.init(engine.uri, database="history_outage")
    try:
        client = await LLMClient.objects.create(name="history-bot")
        await LLMClientRequest.objects.create(llm_client=client, request={"n": 1}, session_key="s")
        app = FastAPI()
        app.include_router(history_router(public=True, timeout=0.5), prefix="/h")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as web:
            assert [(await web.get(u)).status_code for u in HISTORY_URLS] == [200] * 6

            uri = engine.uri
            await engine.stop()
            # The bound turns the driver's 30 s wait into a failure instead of a slow pass.
            down = await asyncio.wait_for(asyncio.gather(*(web.get(u) for u in HISTORY_URLS)), 20)
            assert [r.status_code for r in down] == [503] * 6
            for response in down:
                assert "did not answer within 0.5 s" in response.json()["detail"]

            # Nothing listens on the engine's port now: init() says so, in one line.
            address = uri.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            with pytest.raises(ServerUnreachable, match=f"at {address} within 0.5 s"):
                await asyncio.wait_for(llmreq_mongo.init(uri, timeout=0.5), 20)

            await engine.start()  # same port, same store: the API answers again
        patient = FastAPI()
        patient.include_router(history_router(public=True, timeout=60), prefix="/h")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=patient), base_url="http://testserver"
        ) as web:
            back = [(await web.get(u)).status_code for u in HISTORY_URLS]
        assert back == [200] * 6
    finally:
        await handle.close()
