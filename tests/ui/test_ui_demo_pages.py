"""The pages over ``llmreq demo``'s own data, in light and dark, at desktop and phone width.

The demo runs as a user runs it (a child process of the command line, on the
test's database); its sessions then show answers, tool calls, streams and
failures. The screenshots are test artefacts (``artefacts/ui/demo-*.png``,
and ``docs-*.png`` at the width of the pictures in the docs).
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from typing import Any

from playwright.async_api import expect
from uibrowser import DESKTOP, PHONE, screenshot

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo.pytest_plugin import TestServer


async def _run_demo(engine: TestServer, database: str) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmreq_mongo",
        "--uri",
        engine.uri,
        "--database",
        database,
        "demo",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await demo.communicate()
    assert demo.returncode == 0, err.decode()


async def _showcase_session() -> tuple[str, Any]:
    """A code-assistant session with a tool call, a failure, streams and token counts (of
    about five calls, to fit a screenshot), and a call of it that used the tool."""
    coder = await LLMClient.objects.get(name="code-assistant")
    calls = await LLMClientRequest.objects.filter(llm_client=coder).order_by("created_at").to_list()
    by_key: dict[str, list[Any]] = {}
    for call in calls:
        by_key.setdefault(call.session_key or "", []).append(call)

    def tools(c: Any) -> bool:
        return bool(c.response and set(c.response.finish_reasons) & {"tool_calls", "tool_use"})

    def score(key: str) -> tuple[bool, bool, bool, bool, int]:
        mine = by_key[key]
        failed = any(c.response and c.response.error for c in mine)
        streamed = any(c.response and c.response.stream for c in mine)
        counted = any(c.response and c.response.usage for c in mine)
        return (
            not any(tools(c) for c in mine),
            not failed,
            not streamed,
            not counted,
            abs(len(mine) - 5),
        )

    key = min(by_key, key=score)
    return key, next((c for c in by_key[key] if tools(c)), by_key[key][0])


async def test_the_demo_data_in_every_page(
    serve: Any, llmreq_engine: TestServer, llmreq_db: Any
) -> None:
    await _run_demo(llmreq_engine, llmreq_db.database.name)
    key, tool_call = await _showcase_session()
    pages = {
        "overview": "/",
        "sessions": "/sessions",
        "session": "/sessions/" + urllib.parse.quote(key, safe=""),
        "request": f"/requests/{tool_call.id}",
    }
    async with serve() as site:
        for scheme in ("light", "dark"):
            for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                tab = await site.tab(viewport=viewport, color_scheme=scheme)
                for name, path in pages.items():
                    response = await tab.open(path)
                    assert response.status == 200, path
                    saved = await screenshot(tab, f"demo-{name}-{size}-{scheme}")
                    assert saved.stat().st_size > 1000
                    width = await tab.page.evaluate("document.documentElement.scrollWidth")
                    assert width <= viewport["width"], (name, size, scheme, width)
        # The docs' pictures: narrower, so that they stay small.
        docs = await site.tab(viewport={"width": 1000, "height": 700})
        for name in ("overview", "session"):
            await docs.open(pages[name])
            await screenshot(docs, f"docs-{name}")
        tab = await site.tab()
        page = tab.page
        await tab.open(pages["session"])
        # What the demo recorded is what the page shows: answers, a tool call, a failure.
        await expect(page.locator(".msg.tool-call").first).to_be_visible()
        await expect(page.locator("li.call.failed").first).to_be_visible()
        assert await page.locator(".msg.answer").count() >= 2
        await tab.open(pages["request"])
        await expect(page.locator("table.response-fields")).to_contain_text("tool_")
