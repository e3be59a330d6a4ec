"""Serving the history pages with uvicorn and opening them in Chromium, for the browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page

from llmreq_mongo.integrations.fastapi import history_ui

__all__ = [
    "ARTEFACTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DESKTOP",
    "PHONE",
    "Served",
    "Tab",
    "public_app",
    "screenshot",
    "serving",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where screenshots go: a test artefact, ignored by git.
ARTEFACTS = Path(__file__).resolve().parents[2] / "artefacts" / "ui"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Tab:
    """A browser tab on the served app, recording requests and console errors."""

    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(self, path: str) -> Any:
        """Open ``path`` (relative to the server) and return the response."""
        return await self.page.goto(self.origin + path)

    def assert_clean(self) -> None:
        """No console error, no page error, no request outside the origin."""
        assert self.errors == [], self.errors
        outside = [u for u in self.requests if not u.startswith(self.origin + "/")]
        assert outside == [], outside


@dataclass
class Served:
    """A running server and a way to open tabs on it."""

    origin: str
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    tabs: list[Tab] = field(default_factory=list)

    async def tab(self, **options: Any) -> Tab:
        """A new tab in its own browser context (``viewport``, ``extra_http_headers``, ...)."""
        options.setdefault("viewport", DESKTOP)
        context = await self.browser.new_context(**options)
        self.contexts.append(context)
        page = await context.new_page()
        tab = Tab(page, self.origin)
        page.on("request", lambda request: tab.requests.append(request.url))
        page.on(
            "console",
            lambda message: tab.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
        self.tabs.append(tab)
        return tab


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextlib.asynccontextmanager
async def serving(app: FastAPI, browser: Browser) -> AsyncIterator[Served]:
    """Serve ``app`` with uvicorn on a free loopback port while the block runs."""
    sock = _free_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()
    served = Served(f"http://{host}:{port}", browser)
    try:
        yield served
        for tab in served.tabs:
            tab.assert_clean()
    finally:
        for context in served.contexts:
            await context.close()
        server.should_exit = True
        await task
        sock.close()


def public_app(prefix: str = "") -> FastAPI:
    """An app with the browser mounted without protection (the test server is local)."""
    app = FastAPI()
    app.include_router(history_ui(public=True), prefix=prefix)
    return app


async def screenshot(tab: Tab, name: str) -> Path:
    """Save a full-page screenshot of the tab as a test artefact."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    await tab.page.screenshot(path=str(path), full_page=True)
    return path
