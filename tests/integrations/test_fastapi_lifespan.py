"""LLMReqLifespan and the FastAPI dependencies, with the lifespan run as a server runs it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from bson import ObjectId
from fastapi import Body, Depends, FastAPI, Request

from llmreq_mongo import Handle, InvalidInput, LLMClient, LLMReqError, Recorder
from llmreq_mongo.errors import RecorderClosed, ServerUnreachable
from llmreq_mongo.integrations.asgi import ASGIApp, LLMRequestLogger
from llmreq_mongo.integrations.fastapi import (
    LLMReqLifespan,
    get_llm_client,
    get_recorder,
    get_session_key,
    session_key_dependency,
)

# At module level: FastAPI resolves the (string) annotations of routes in module globals.
custom_session_key = session_key_dependency(["query:sid", "body:meta.sid"])

Serve = Callable[[ASGIApp], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


async def stored(handle: Handle) -> list[dict[str, Any]]:
    # Read through the test's own client: what the app's lifespan wrote, after it ended.
    cursor = handle.database["llm_client_requests"].find({}, sort=[("created_at", 1), ("_id", 1)])
    return await cursor.to_list(None)


async def test_the_lifespan_runs_init_a_recorder_and_the_apps_own_lifespan(
    llmreq_db: Handle, serve: Serve
) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # The recorder already runs here, and still runs at shutdown.
        llmreq.recorder.record(llmreq.llm_client, {"event": "startup"})
        events.append("app started")
        yield {"greeting": "hello"}
        llmreq.recorder.record(llmreq.llm_client, {"event": "shutdown"})
        events.append("app stopped")

    llmreq = LLMReqLifespan(
        own_lifespan,
        target=llmreq_db.database,
        llm_client="support-bot",
        recorder_options={"flush_interval": 0.01},
    )
    app = FastAPI(lifespan=llmreq)

    @app.post("/ask")
    async def ask(
        request: Request,
        body: dict[str, Any],
        recorder: Annotated[Recorder, Depends(get_recorder)],
        client: Annotated[LLMClient, Depends(get_llm_client)],
        session_key: Annotated[str | None, Depends(get_session_key)],
    ) -> dict[str, Any]:
        record_id = recorder.record(client, body, session_key=session_key)
        return {"id": str(record_id), "greeting": request.state.greeting, "key": session_key}

    assert llmreq.current_recorder() is None and llmreq.handle is None
    with pytest.raises(RecorderClosed):
        _ = llmreq.recorder
    async with serve(app) as web:
        assert events == ["app started"]
        assert llmreq.handle is not None and llmreq.handle.database.name == llmreq_db.database.name
        response = await web.post("/ask", json={"q": "hi", "session_key": "s-1"})
        assert response.status_code == 200
        answer = response.json()
        assert answer["greeting"] == "hello" and answer["key"] == "s-1"
    assert events == ["app started", "app stopped"]
    assert llmreq.current_recorder() is None and llmreq.current_client() is None

    records = await stored(llmreq_db)  # the recorder's stop() wrote everything
    assert [r["request"] for r in records] == [
        {"event": "startup"},
        {"q": "hi", "session_key": "s-1"},
        {"event": "shutdown"},
    ]
    assert records[1]["_id"] == ObjectId(answer["id"])
    assert records[1]["session_key"] == "s-1"
    client = await LLMClient.objects.get(name="support-bot")
    assert {r["llm_client_id"] for r in records} == {client.id}


async def test_the_middleware_takes_the_recorder_and_client_from_the_lifespan(
    llmreq_db: Handle, serve: Serve, http: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    llmreq = LLMReqLifespan(target=llmreq_db.database, llm_client="chat")
    app = FastAPI(lifespan=llmreq)
    app.add_middleware(
        LLMRequestLogger,
        recorder=llmreq.current_recorder,
        llm_client=llmreq.current_client,
        paths=["/v1/chat/completions"],
    )

    @app.post("/v1/chat/completions")
    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        return {"echo": body}

    # Without the lifespan the app still answers; nothing can be recorded.
    async with http(app) as web:
        assert (await web.post("/v1/chat/completions", json={"n": 0})).status_code == 200
    async with serve(app) as web:
        for n in (1, 2):
            response = await web.post(
                "/v1/chat/completions", json={"n": n}, headers={"x-session-key": "abc"}
            )
            assert response.json() == {"echo": {"n": n}}
    records = await stored(llmreq_db)
    assert [(r["request"], r["session_key"]) for r in records] == [
        ({"n": 1}, "abc"),
        ({"n": 2}, "abc"),
    ]


async def test_a_lifespan_runs_once_at_a_time_and_can_run_again(
    llmreq_db: Handle, serve: Serve
) -> None:
    llmreq = LLMReqLifespan(target=llmreq_db.database)
    app = FastAPI(lifespan=llmreq)
    async with serve(app):
        first = llmreq.recorder
        with pytest.raises(LLMReqError, match="no LLM client"):
            _ = llmreq.llm_client
        with pytest.raises(LLMReqError, match="already running"):
            async with llmreq(app):
                pass
    async with serve(app):  # a restarted app gets a new recorder
        assert llmreq.recorder is not first


async def test_the_session_key_dependency_reads_the_places_in_order(
    llmreq_db: Handle, http: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    app = FastAPI()

    @app.post("/default")
    async def default(key: Annotated[str | None, Depends(get_session_key)]) -> dict[str, Any]:
        return {"key": key}

    @app.post("/custom")
    async def custom_route(
        body: Annotated[dict[str, Any], Body()],
        key: Annotated[str | None, Depends(custom_session_key)],
    ) -> dict[str, Any]:
        return {"key": key, "body": body}

    async with http(app) as web:
        keys = [
            (await web.post("/default", json={"session_key": "b"}, params={"session_key": "q"})),
            (await web.post("/default", json={"session_key": {"$ne": ""}})),
            (await web.post("/default", headers={"x-session-key": "h"}, json={"session_key": "b"})),
            (await web.post("/custom", json={"meta": {"sid": "m"}})),
            (await web.post("/custom", json={"meta": {"sid": "m"}}, params={"sid": "q"})),
            (await web.post("/default", content=b"not json")),
        ]
    assert [r.status_code for r in keys] == [200] * 6, [r.text for r in keys]
    assert [r.json()["key"] for r in keys] == ["b", None, "h", "m", "q", None]
    assert keys[3].json()["body"] == {"meta": {"sid": "m"}}  # the route still gets its body


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"recorder_options": {"max_batch": 0}},
            r"recorder_options\['max_batch'\] must be a positive",
        ),
        ({"recorder_options": {"max_queue": True}}, r"\['max_queue'\] must be a positive integer"),
        ({"recorder_options": {"flush_interval": -1}}, r"\['flush_interval'\] must be a finite"),
        ({"recorder_options": {"retry_deadline": 0}}, r"\['retry_deadline'\] must be a finite"),
        ({"recorder_options": {"stop_timeout": math.nan}}, r"\['stop_timeout'\] must be"),
        ({"recorder_options": {"on_full": "wait"}}, r"\['on_full'\] must be one of 'block'"),
        ({"recorder_options": {"spill_path": 42}}, r"\['spill_path'\] must be a file path"),
        ({"recorder_options": {"after_write": "log"}}, r"\['after_write'\] must be a function"),
        ({"recorder_options": {"no_such_option": 1}}, "'no_such_option', which is not a Recorder"),
        ({"recorder_options": {1: 2}}, "1, which is not a Recorder option; the options are"),
        ({"recorder_options": "spill.jsonl"}, "recorder_options takes a mapping"),
        ({"recorder_options": [("max_batch", 10)]}, "recorder_options takes a mapping"),
        ({"llm_client": ""}, "llm_client must be"),
        ({"llm_client": 42}, "llm_client must be"),
        ({"embedded": 3}, "embedded must be"),
        ({"database": ""}, "database must be"),
        ({"database": "a.b"}, "not a valid MongoDB database name"),
        ({"database": 7}, "database must be"),
        ({"document_models": "myapp.Note"}, "sequence of Beanie document classes"),
        ({"document_models": [dict]}, "subclasses of beanie.Document"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0"),
        ({"timeout": True}, "timeout must be"),
        ({"timeout": "5"}, "timeout must be"),
        ({"target": ""}, "URI is empty"),
        ({"target": 42}, "takes a MongoDB URI"),
        ({"target": b"mongodb://localhost"}, "takes a MongoDB URI"),
    ],
    ids=repr,
)
def test_bad_options_are_refused_when_the_lifespan_is_built(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        LLMReqLifespan(**options)
    assert "\n" not in str(info.value)


def test_a_spill_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"\['spill_path'\] .* is a directory; give a file path"):
        LLMReqLifespan(recorder_options={"spill_path": tmp_path})


def test_good_recorder_options_are_kept_as_given(tmp_path: Path) -> None:
    def after_write(ids: list[ObjectId]) -> None:
        pass

    options = {
        "max_batch": 10,
        "max_queue": 20,
        "flush_interval": 0,
        "on_full": "drop",
        "spill_path": tmp_path / "llmreq.spill",
        "after_write": after_write,
    }
    LLMReqLifespan(recorder_options=options)  # accepted
    assert not (tmp_path / "llmreq.spill").exists()  # nothing is made when it is built


async def test_the_app_fails_to_start_within_the_timeout_when_nothing_answers() -> None:
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        llmreq = LLMReqLifespan(target=f"mongodb://127.0.0.1:{port}/", timeout=0.5)
        app = FastAPI(lifespan=llmreq)

        # The bound turns the driver's 30 s wait into a failure instead of a slow pass.
        async def start_and_stop() -> None:
            async with llmreq(app):
                pass

        with pytest.raises(ServerUnreachable, match=f"at 127.0.0.1:{port} within 0.5 s"):
            await asyncio.wait_for(start_and_stop(), 20)
    assert llmreq.current_recorder() is None and llmreq.handle is None


def test_an_app_lifespan_must_be_callable() -> None:
    with pytest.raises(InvalidInput, match="app_lifespan must be"):
        LLMReqLifespan("not a lifespan")  # type: ignore[arg-type]
