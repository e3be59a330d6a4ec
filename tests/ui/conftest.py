"""Fixtures for the history browser's tests: a real server and a real browser.

The pages are served by uvicorn on 127.0.0.1 (a free port, in the test's own
event loop, reading the test's database) and driven by Playwright with
Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it when it is
missing). Every tab records the requests it makes and the console errors it
sees, so a test can assert that nothing left the page's origin and nothing
went wrong in the browser.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright
from uibrowser import CHROMIUM, CHROMIUM_ARGS, Served, public_app, serving


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium: the tests never skip, so its absence fails them."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Headless Chromium, shared by the browser tests."""
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
def serve(
    llmreq_db: object, browser: Browser
) -> Callable[..., contextlib.AbstractAsyncContextManager[Served]]:
    """``async with serve() as site:``: the pages of the test's database, served."""

    def start(app: FastAPI | None = None) -> contextlib.AbstractAsyncContextManager[Served]:
        return serving(app if app is not None else public_app(), browser)

    return start
