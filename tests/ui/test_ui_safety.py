"""The history browser with hostile payloads, paging and protection, in a real browser."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException
from playwright.async_api import expect
from uiseed import XSS, ago, chat_session, store

from llmreq_mongo import LLMClient
from llmreq_mongo.integrations.fastapi import history_ui

HOSTILE_KEY = XSS[1] + "/" + XSS[0]


async def _no_script_ran(tab: Any) -> None:
    assert await tab.page.evaluate("typeof window.pwned") == "undefined"
    # Only the page's own script element exists, and no element came from a payload.
    assert await tab.page.locator("main img, main svg[onload], main script").count() == 0


async def test_payloads_render_as_text_and_run_nothing(serve: Any) -> None:
    client = await LLMClient.objects.create(name=XSS[0], description=XSS[1])
    turns = [(text, XSS[(i + 1) % len(XSS)]) for i, text in enumerate(XSS)]
    ids = await store(client, chat_session(HOSTILE_KEY, turns, start=ago(minutes=5), model=XSS[2]))
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        await tab.open("/")
        await expect(page.locator("table.clients td").first).to_contain_text(XSS[0])
        await _no_script_ran(tab)

        await page.get_by_role("link", name="Sessions", exact=True).click()
        await expect(page.locator("table.sessions td.key")).to_have_text([HOSTILE_KEY])
        await expect(page.locator("select[name=client] option").nth(1)).to_have_text(XSS[0])
        await _no_script_ran(tab)

        await page.locator("table.sessions td.key a").click()
        await expect(page.locator("h1")).to_have_text("Session " + HOSTILE_KEY)
        texts = page.locator("li.call").nth(0).locator(".msg .text")
        await expect(texts.nth(1)).to_have_text(XSS[0])
        await expect(page.locator("li.call").nth(1).locator(".msg .text").nth(0)).to_have_text(
            XSS[1]
        )
        await expect(page.locator(".figures").first).to_contain_text(XSS[2])
        # A javascript: text is never made into a link.
        hrefs = await page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert all(not h.lower().startswith("javascript:") for h in hrefs)
        await _no_script_ran(tab)

        await tab.open(f"/requests/{ids[-1]}")
        await expect(page.locator("#request-json")).to_contain_text(XSS[3])
        await expect(page.locator("table.fields")).to_contain_text(HOSTILE_KEY)
        await _no_script_ran(tab)


async def test_keyset_paging_shows_every_session_once(serve: Any) -> None:
    client = await LLMClient.objects.create(name="pager")
    start = ago(hours=3)
    records: list[Any] = []
    for i in range(123):
        # Pairs of sessions share a last instant, so the tiebreak on the key is exercised.
        at = start + dt.timedelta(seconds=i // 2)
        records.append((f"s-{i:03d}", {"n": i}, at))
    await store(client, records)
    expected = sorted((r[0] for r in records), key=lambda k: (-(int(k[2:]) // 2), k))
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        await tab.open("/sessions")
        seen: list[str] = []
        pages = 0
        while True:
            pages += 1
            seen += await page.locator("table.sessions td.key").all_inner_texts()
            if pages == 1:
                # A session recorded while someone pages does not shift the pages.
                await store(client, [("s-late", {"n": -1}, ago(seconds=0))])
            following = page.get_by_role("link", name="Next page")
            if not await following.count():
                break
            await following.click()
            await expect(page.get_by_role("link", name="First page")).to_be_visible()
        assert pages == 3
        assert len(seen) == len(set(seen)) == 123
        assert seen == expected

        # The key prefix filter (same-instant sessions by key), matched as text, not a pattern.
        await tab.open("/sessions?prefix=s-12")
        await expect(page.locator("table.sessions td.key")).to_have_text(
            ["s-122", "s-120", "s-121"]
        )
        await tab.open("/sessions?prefix=" + urllib.parse.quote("s.*"))
        await expect(page.locator(".empty")).to_have_text("No sessions match.")


def _guarded_app(prefix: str) -> FastAPI:
    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization != "Bearer let-me-in":
            raise HTTPException(status_code=401, detail="credentials required")

    app = FastAPI()
    app.include_router(history_ui(dependencies=[Depends(require_token)]), prefix=prefix)
    return app


async def test_mounted_under_a_prefix_behind_auth(serve: Any) -> None:
    client = await LLMClient.objects.create(name="guarded-bot")
    await store(client, chat_session("a/b", [("hi", "hello")], start=ago(minutes=1)))
    prefix = "/admin/llm history"
    async with serve(_guarded_app(prefix)) as site:
        stranger = await site.tab()
        response = await stranger.open(urllib.parse.quote(prefix) + "/")
        assert response.status == 401
        await expect(stranger.page.locator("body")).to_contain_text("credentials required")
        for path in ("/sessions", "/sessions/a%2Fb", "/static/ui.css"):
            response = await stranger.open(urllib.parse.quote(prefix) + path)
            assert response.status == 401, path

        tab = await site.tab(extra_http_headers={"Authorization": "Bearer let-me-in"})
        page = tab.page
        response = await tab.open(urllib.parse.quote(prefix) + "/")
        assert response.status == 200
        await page.get_by_role("link", name="guarded-bot").click()
        await page.get_by_role("link", name="a/b").click()
        await page.get_by_role("link", name="Call 1").click()
        await expect(page.locator("#request-json")).to_contain_text('"content": "hi"')
        # Every link and file stays under the prefix it is mounted at.
        links = await page.locator("a[href], link[href], script[src]").evaluate_all(
            "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))"
        )
        assert links and all(h.startswith("/admin/llm%20history/") for h in links), links
        assert all(u.startswith(site.origin + "/admin/llm%20history/") for u in tab.requests)
        # The stranger's refusals, and its browser asking for /favicon.ico after the last of
        # them (which comes when it comes: filtered last, once the other tab is done).
        stranger.errors = [e for e in stranger.errors if "status of 40" not in e]
