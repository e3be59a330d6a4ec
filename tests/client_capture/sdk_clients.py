"""The SDK clients of the client-capture tests, and the upstreams they talk to.

Each client is built twice over the same upstream: once through a
``RecordingTransport`` and once bare, both behind a tee that copies the bytes
the SDK reads, so a test can check the SDK received the same bytes either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any, cast

import anthropic
import httpx
import httpx2
import openai
from capture_tee import Tee2Transport, TeeTransport
from capture_upstream import CHAT, chat_stream_chunks, messages_stream_events, upstream_app
from loopback import serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llmreq_mongo import LLMClientRequest

ASGIApp = Callable[..., Any]


class HeaderSpy:
    """An ASGI app in front of another that keeps the headers of every request it gets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[dict[str, str]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.requests.append({"path": scope["path"], **headers})
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def openai_over(
    transport: Any, base_url: str = "http://upstream.test"
) -> AsyncIterator[tuple[openai.AsyncOpenAI, Any]]:
    """An openai client whose httpx client sends through ``transport``, behind a tee."""
    tee = TeeTransport(transport)
    async with httpx.AsyncClient(transport=tee) as http:
        yield (
            openai.AsyncOpenAI(
                api_key="sk-test",
                base_url=f"{base_url}/v1",
                # openai 3.x takes an httpx client, though it is typed for httpx2.
                http_client=cast(Any, http),
                max_retries=0,
            ),
            tee,
        )


@contextlib.asynccontextmanager
async def anthropic_over(
    transport: Any, base_url: str = "http://upstream.test"
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, Any]]:
    """An anthropic client whose httpx2 client sends through ``transport``, behind a tee."""
    tee = Tee2Transport(transport)
    async with httpx2.AsyncClient(transport=tee) as http:
        yield (
            anthropic.AsyncAnthropic(
                api_key="sk-ant-test",
                base_url=base_url,
                http_client=http,
                max_retries=0,
            ),
            tee,
        )


def received(tee: Any) -> list[tuple[int, str | None, bytes]]:
    """What the SDK read through ``tee``, call by call: status, content type, body bytes."""
    return [(e.status, e.content_type, b"".join(e.chunks)) for e in tee.exchanges]


async def records() -> list[LLMClientRequest]:
    """Every stored request record, in the order they were made."""
    return await LLMClientRequest.objects.all().order_by("created_at", "id").to_list()


def dropping_app() -> Starlette:
    """An upstream whose Messages stream stops mid-way with an exception: the connection drops."""

    async def messages(request: Request) -> Response:
        events = messages_stream_events("answer")

        async def body() -> AsyncIterator[bytes]:
            for event in events[: len(events) // 2]:
                yield event
            raise ConnectionResetError("the upstream went away")

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])


def paced_app(pause: float = 0.02) -> Starlette:
    """An upstream whose chat stream sends one event per ``pause`` seconds, each on its own."""

    async def chat(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chat_stream_chunks("answer", include_usage=True):
                yield chunk
                await asyncio.sleep(pause)

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


__all__ = [
    "CHAT",
    "HeaderSpy",
    "anthropic_over",
    "dropping_app",
    "free_port",
    "openai_over",
    "paced_app",
    "received",
    "records",
    "serving",
    "upstream_app",
]
