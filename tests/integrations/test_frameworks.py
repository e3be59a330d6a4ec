"""The same middleware in front of Starlette, FastAPI and Litestar applications."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from litestar import Litestar, post
from litestar.middleware import DefineMiddleware
from litestar.params import JSONBody
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llmreq_mongo import LLMClient, LLMClientRequest, Recorder
from llmreq_mongo.integrations.asgi import ASGIApp, LLMRequestLogger, RequestLoggerStats

CHAT = "/v1/chat/completions"
Http = Callable[[ASGIApp], httpx.AsyncClient]


def completion(body: dict[str, Any]) -> dict[str, Any]:
    return {"object": "chat.completion", "model": body.get("model"), "choices": []}


def starlette_app(options: dict[str, Any]) -> ASGIApp:
    async def complete(request: Request) -> JSONResponse:
        return JSONResponse(completion(await request.json()))

    app = Starlette(routes=[Route(CHAT, complete, methods=["POST"])])
    app.add_middleware(LLMRequestLogger, **options)
    return app


def fastapi_app(options: dict[str, Any]) -> ASGIApp:
    app = FastAPI()

    @app.post(CHAT, response_model=None)
    async def complete(body: dict[str, Any]) -> dict[str, Any] | StreamingResponse:
        if body.get("stream"):

            async def events() -> AsyncIterator[bytes]:
                for i in range(20):
                    yield f'data: {{"delta": "{i}"}}\n\n'.encode()
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return completion(body)

    app.add_middleware(LLMRequestLogger, **options)
    return app


@post(CHAT, status_code=200)
async def litestar_complete(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    return completion(data)


def litestar_app(options: dict[str, Any]) -> ASGIApp:
    # Litestar types its middleware and apps with its own scope TypedDicts.
    middleware = DefineMiddleware(cast(Any, LLMRequestLogger), **options)
    return cast(ASGIApp, Litestar([litestar_complete], middleware=[middleware]))


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app, litestar_app])
async def test_each_framework_gets_its_requests_recorded(
    recorder: Recorder, client: LLMClient, http: Http, make_app: Callable[..., ASGIApp]
) -> None:
    stats = RequestLoggerStats()
    app = make_app({"recorder": recorder, "llm_client": client, "stats": stats})
    bodies = [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
        {"model": "gpt-4o-mini", "messages": [], "session_key": "from-body"},
    ]
    async with http(app) as web:
        first = await web.post(CHAT, json=bodies[0], headers={"x-session-key": "from-header"})
        second = await web.post(CHAT, json=bodies[1], headers={"cookie": "session_key=from-cookie"})
        other = await web.post("/not-recorded", json={"x": 1})
    assert first.status_code == second.status_code == 200
    assert first.json()["model"] == "gpt-4o" and second.json()["model"] == "gpt-4o-mini"
    assert other.status_code in (404, 405)
    await recorder.flush()
    records = await LLMClientRequest.objects.order_by("created_at", "id").to_list()
    assert [(r.request, r.session_key) for r in records] == [
        (bodies[0], "from-header"),
        (bodies[1], "from-cookie"),  # the cookie comes before the body in the default order
    ]
    assert stats.recorded == 2 and stats.seen == 2


async def test_a_streamed_completion_reaches_the_client_intact(
    recorder: Recorder, client: LLMClient, http: Http
) -> None:
    app = fastapi_app({"recorder": recorder, "llm_client": client})
    async with http(app) as web, web.stream("POST", CHAT, json={"stream": True}) as response:
        text = "".join([chunk async for chunk in response.aiter_text()])
    assert response.headers["content-type"].startswith("text/event-stream")
    assert text == "".join(f'data: {{"delta": "{i}"}}\n\n' for i in range(20)) + "data: [DONE]\n\n"
    await recorder.flush()
    assert [r.request for r in await LLMClientRequest.objects.all().to_list()] == [{"stream": True}]
