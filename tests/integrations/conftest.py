"""Fixtures for the web-framework integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmreq_mongo import Recorder
from llmreq_mongo.integrations.asgi import ASGIApp, Message, Receive, Scope, Send

# The local upstream that answers as the LLM APIs do, and the tee that copies what a
# client reads, live with the capture tests; these tests serve the same upstream.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))

from loopback import serving


@pytest.fixture
async def recorder(llmreq_db: object) -> AsyncIterator[Recorder]:
    """A running recorder writing to the test's database."""
    async with Recorder(flush_interval=0.01) as rec:
        yield rec


@pytest.fixture
def http() -> Callable[[ASGIApp], httpx.AsyncClient]:
    """Make an httpx client that talks to an ASGI app in-process (no network, no lifespan)."""

    def make(app: ASGIApp) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    return make


@pytest.fixture
def serve() -> Callable[[ASGIApp], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]:
    """Run an app's lifespan as a server does, and talk to the app with httpx meanwhile.

    httpx's ASGITransport sends requests only; this drives the ASGI lifespan
    protocol too, and hands each request a copy of the lifespan state.
    """

    @contextlib.asynccontextmanager
    async def running(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
        state: dict[str, Any] = {}
        to_app: asyncio.Queue[Message] = asyncio.Queue()
        from_app: asyncio.Queue[Message] = asyncio.Queue()

        async def receive() -> Message:
            return await to_app.get()

        async def send(message: Message) -> None:
            await from_app.put(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
        task = asyncio.ensure_future(app(scope, receive, send))
        await to_app.put({"type": "lifespan.startup"})
        started = await from_app.get()
        if started["type"] != "lifespan.startup.complete":
            await task
            raise AssertionError(started.get("message", started))

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=with_state), base_url="http://testserver"
            ) as client:
                yield client
        finally:
            await to_app.put({"type": "lifespan.shutdown"})
            stopped = await from_app.get()
            await task
            assert stopped["type"] == "lifespan.shutdown.complete", stopped.get("message")

    return running


@pytest.fixture
def served() -> Callable[[ASGIApp], contextlib.AbstractAsyncContextManager[str]]:
    """Serve an app with uvicorn on a free loopback port while the block runs; give its URL.

    The server runs in the test's own event loop, so the app and the test can share
    asyncio events.
    """
    return serving
