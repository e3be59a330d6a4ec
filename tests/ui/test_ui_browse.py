"""The history browser in a real browser: what a person sees, following the links."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import expect
from uibrowser import DESKTOP, PHONE, screenshot
from uiseed import ago, chat_session, store

from llmreq_mongo import LLMClient

TURNS = [
    ("What is the capital of France?", "Paris."),
    ("And of Italy?", "Rome."),
    ("Which is bigger?", "Paris has fewer people than Rome."),
]


async def seed() -> dict[str, Any]:
    bot = await LLMClient.objects.create(name="support-bot", description="answers tickets")
    quiet = await LLMClient.objects.create(name="summariser", description="")
    ids = await store(bot, chat_session("ticket/42 été %20", TURNS, start=ago(hours=2)))
    await store(bot, chat_session("ticket-7", TURNS[:1], start=ago(hours=30)))
    await store(quiet, [("batch-1", {"model": "small", "input": "a long text"}, ago(days=3))])
    await store(quiet, [(None, {"model": "small", "input": "no session"}, ago(days=20))])
    return {"ids": ids}


async def test_overview_to_session_to_call(serve: Any) -> None:
    seeded = await seed()
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        response = await tab.open("/")
        assert response.status == 200
        await expect(page).to_have_title(re.compile("Overview"))
        rows = page.locator("table.clients tbody tr")
        await expect(rows).to_have_count(2)
        # The busiest client first; 7 days by default, so the 20-day-old request is out.
        await expect(rows.nth(0).locator("td").nth(0)).to_contain_text("support-bot")
        await expect(rows.nth(0).locator("td").nth(1)).to_have_text("4")
        await expect(rows.nth(0).locator("td").nth(2)).to_have_text("2")
        await expect(rows.nth(1).locator("td").nth(1)).to_have_text("1")
        # Tokens, errors and latency are not recorded: an em dash, not a zero.
        await expect(rows.nth(0).locator("td").nth(3)).to_have_text("\u2014")
        await expect(rows.nth(0).locator("td").nth(6)).to_have_text("\u2014")
        await expect(page.locator("svg.bars rect.bar")).to_have_count(8)  # 7 days, both ends
        await expect(page.locator("figure.chart figcaption")).to_contain_text("5 calls, per day")
        await expect(page.locator(".placeholder")).to_contain_text("No latency recorded")

        await page.get_by_role("link", name="30d").click()
        await expect(rows.nth(1).locator("td").nth(1)).to_have_text("2")
        await page.get_by_role("link", name="24h").click()
        await expect(page.locator("figure.chart figcaption")).to_contain_text("per hour")
        await expect(rows.nth(0).locator("td").nth(1)).to_have_text("3")

        # Overview -> the client's sessions -> one session.
        await page.get_by_role("link", name="support-bot").click()
        await expect(page).to_have_title(re.compile("Sessions"))
        keys = page.locator("table.sessions td.key")
        await expect(keys).to_have_text(["ticket/42 été %20"])  # the 24h window is kept
        await page.get_by_role("link", name="ticket/42 été %20").click()
        await expect(page.locator("h1")).to_have_text("Session ticket/42 été %20")
        calls = page.locator("li.call")
        await expect(calls).to_have_count(3)
        # The first call shows the system prompt and the question; later calls only what is new.
        await expect(calls.nth(0).locator(".msg .text")).to_have_text(
            ["Be brief.", TURNS[0][0], "\u2014 not recorded"]
        )
        await expect(calls.nth(1).locator(".msg .text")).to_have_text(
            [TURNS[0][1], TURNS[1][0], "\u2014 not recorded"]
        )
        await expect(calls.nth(1)).to_contain_text("after 2 earlier messages")
        await expect(calls.nth(2).locator(".figures")).to_contain_text("gpt-4o")
        await expect(calls.nth(2).locator(".figures")).to_contain_text("latency\u2014")

        # Session -> the call.
        await calls.nth(1).get_by_role("link", name="Call 2").click()
        await expect(page.locator("h1")).to_contain_text(str(seeded["ids"][1]))
        fields = page.locator("table.fields")
        await expect(fields).to_contain_text("support-bot")
        await expect(fields).to_contain_text("ticket/42 été %20")
        request_json = page.locator("#request-json")
        await expect(request_json).to_contain_text('"content": "And of Italy?"')
        await expect(page.locator("details.json").nth(1)).to_contain_text("no response recorded")
        # The session link on the call page leads back to the same session.
        await fields.get_by_role("link", name="ticket/42 été %20").click()
        await expect(calls).to_have_count(3)


async def test_copy_and_collapse(serve: Any) -> None:
    seeded = await seed()
    async with serve() as site:
        tab = await site.tab()
        await tab.page.context.grant_permissions(
            ["clipboard-read", "clipboard-write"], origin=site.origin
        )
        page = tab.page
        await tab.open(f"/requests/{seeded['ids'][0]}")
        copy = page.locator("button.copy[data-copy='request-json']")
        await expect(copy).to_be_visible()
        await copy.click()
        await expect(copy).to_have_text("Copied")
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert copied == await page.locator("#request-json").text_content()
        assert '"content": "What is the capital of France?"' in copied

        request_block = page.locator("details.json").nth(0)
        await expect(request_block).to_have_attribute("open", "")
        await request_block.locator("summary").click()
        await expect(request_block).not_to_have_attribute("open", "")
        toggle = page.locator("button.toggle-all")
        await toggle.click()
        assert await page.locator("details.json[open]").count() == 0
        await expect(toggle).to_have_text("Expand all")
        await toggle.click()
        assert await page.locator("details.json[open]").count() == 3


async def test_works_without_javascript(serve: Any) -> None:
    seeded = await seed()
    async with serve() as site:
        tab = await site.tab(java_script_enabled=False)
        page = tab.page
        await tab.open("/")
        await page.get_by_role("link", name="Sessions", exact=True).click()
        await page.select_option("select[name=client]", "support-bot")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("table.sessions td.key")).to_have_text(
            ["ticket/42 été %20", "ticket-7"]
        )
        await tab.open(f"/requests/{seeded['ids'][0]}")
        # Collapsing is the browser's own; the copy buttons need the script, so they stay hidden.
        block = page.locator("details.json").nth(0)
        await block.locator("summary").click()
        await expect(block).not_to_have_attribute("open", "")
        await expect(page.locator("button.copy").first).to_be_hidden()


async def test_error_pages(serve: Any) -> None:
    await seed()
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        cases = [
            ("/sessions/no-such-session", 404, "there is no session 'no-such-session'"),
            ("/requests/" + "0" * 24, 404, "there is no request"),
            ("/requests/not-an-id", 400, "is not a request id"),
            ("/sessions?after=bm90LWEtY3Vyc29y", 400, "page cursor is not valid"),
            ("/sessions?window=1y", 400, "window must be one of"),
            ("/?window=7d&window=30d", 400, "given 2 times"),
            ("/sessions?client=nobody", 404, "no LLM client named 'nobody'"),
        ]
        for path, status, text in cases:
            response = await tab.open(path)
            assert response.status == status, path
            await expect(page.locator(".error .message")).to_contain_text(text)
            await expect(page.get_by_role("link", name="Back to the overview")).to_be_visible()
        # Chromium reports each failed page load on the console; those are the point here.
        tab.errors = [e for e in tab.errors if "status of 40" not in e]


async def test_screenshots_at_desktop_and_phone_width(serve: Any) -> None:
    seeded = await seed()
    pages = {
        "overview": "/",
        "sessions": "/sessions",
        "session": "/sessions/ticket%2F42%20%C3%A9t%C3%A9%20%2520",
        "request": f"/requests/{seeded['ids'][2]}",
        "not-found": "/sessions/missing",
    }
    async with serve() as site:
        for size_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            tab = await site.tab(viewport=viewport)
            for name, path in pages.items():
                await tab.open(path)
                path_saved = await screenshot(tab, f"{name}-{size_name}")
                assert path_saved.stat().st_size > 1000
                # Nothing sticks out sideways: the page reads without scrolling across.
                width = await tab.page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], (name, size_name, width)
            tab.errors = [e for e in tab.errors if "status of 404" not in e]
        # The system's dark mode is followed.
        dark = await site.tab(color_scheme="dark")
        await dark.open(pages["session"])
        await screenshot(dark, "session-desktop-dark")
        background = await dark.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)"
