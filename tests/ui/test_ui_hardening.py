"""The browser against a hostile page, a shared session key and a cache.

- ``llmreq ui`` answers only the loopback names it serves (DNS rebinding).
- Two clients using the same session key are two sessions, each opened alone.
- Every page carries ``Cache-Control: no-store``; the server's own 404s are
  HTML pages with the security headers.
- A session none of whose calls carries a response shows an em dash for its
  errors, never 0.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import expect
from uibrowser import DESKTOP, public_app, screenshot
from uiseed import ago, chat_answer, chat_session, page_paths, store

from llmreq_mongo import LLMClient
from llmreq_mongo._cli._ui import allowed_hosts, serving_app
from llmreq_mongo.integrations.ui import SECURITY_HEADERS

DASH = "\u2014"


def web(app: FastAPI, host: str = "127.0.0.1:8765") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


def _assert_headed(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)


@pytest.mark.parametrize(
    "host",
    ["attacker.example:8765", "attacker.example", "127.0.0.1.nip.io", "[::2]:8765", "evil"],
)
async def test_llmreq_ui_refuses_a_foreign_host(llmreq_db: object, host: str) -> None:
    await LLMClient.objects.create(name="bot")
    async with web(serving_app("127.0.0.1"), host) as http:
        for path in ("/", "/sessions", "/static/ui.css", "/nonexistent"):
            refused = await http.get(path)
            assert refused.status_code == 400, (host, path)
            assert "bot" not in refused.text
            _assert_headed(refused)


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "127.0.0.1", "localhost:8765", "LOCALHOST", "[::1]:8765", "[::1]"]
)
async def test_llmreq_ui_answers_its_loopback_names(llmreq_db: object, host: str) -> None:
    await LLMClient.objects.create(name="bot")
    async with web(serving_app("127.0.0.1"), host) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "bot" in page.text


def test_allowed_hosts_follow_the_address_served() -> None:
    loopback = ["127.0.0.1", "localhost", "[::1]"]
    assert allowed_hosts("127.0.0.1") == loopback
    assert allowed_hosts("localhost") == loopback
    assert allowed_hosts("::1") == loopback
    assert allowed_hosts("127.0.0.2") == [*loopback, "127.0.0.2"]
    # --allow-remote on a named address: that address as well.
    assert allowed_hosts("192.168.1.20") == [*loopback, "192.168.1.20"]
    assert allowed_hosts("fe80::1") == [*loopback, "[fe80::1]"]
    assert allowed_hosts("Box.Example") == [*loopback, "box.example"]
    # Every address: the names that reach it are unknown, so none is refused.
    assert allowed_hosts("0.0.0.0") == ["*"]
    assert allowed_hosts("::") == ["*"]


async def test_llmreq_ui_on_a_remote_address_answers_that_address(llmreq_db: object) -> None:
    async with web(serving_app("192.168.1.20"), "192.168.1.20:8765") as http:
        assert (await http.get("/")).status_code == 200
    async with web(serving_app("192.168.1.20"), "attacker.example") as http:
        assert (await http.get("/")).status_code == 400


async def test_llmreq_ui_answers_404_with_an_html_page_and_its_headers(llmreq_db: object) -> None:
    async with web(serving_app("127.0.0.1")) as http:
        for path in ("/nonexistent", "/static/..%2fpages.py", "/static/a/b", "/requests/"):
            missing = await http.get(path)
            assert missing.status_code == 404, path
            assert missing.headers["content-type"].startswith("text/html"), path
            assert "<h1>Not found</h1>" in missing.text
            assert 'href="/static/ui.css"' in missing.text
            assert missing.headers["cache-control"] == "no-store"
            _assert_headed(missing)
        assert (await http.head("/nonexistent")).status_code == 404


async def test_pages_are_not_stored_by_caches(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="bot")
    ids = await store(client, chat_session("s", [("hi", "yo")], start=ago(minutes=1)))
    async with web(public_app("/h")) as http:
        for path in page_paths("/h", ids[0]):
            response = await http.get(path)
            assert response.headers["cache-control"] == "no-store", path
        refused = await http.post("/h/sessions")
        assert refused.headers["cache-control"] == "no-store"
        # The static files hold no record: they stay cacheable.
        css = await http.get("/h/static/ui.css")
        assert css.headers["cache-control"] == "public, max-age=3600"


def _hrefs(text: str, start: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', text) if h.startswith(start)]


async def test_two_clients_with_one_session_key_open_apart(llmreq_db: object) -> None:
    alpha = await LLMClient.objects.create(name="alpha")
    beta = await LLMClient.objects.create(name="beta bot")
    await store(alpha, chat_session("shared", [("alpha asks", "a")], start=ago(minutes=3)))
    await store(beta, chat_session("shared", [("beta asks", "b")], start=ago(minutes=2)))
    async with web(public_app()) as http:
        listing = await http.get("/sessions")
        links = _hrefs(listing.text, "/sessions/shared")
        assert links == ["/sessions/shared?client=beta+bot", "/sessions/shared?client=alpha"]
        for href, mine, theirs, name in (
            (links[0], "beta asks", "alpha asks", "beta bot"),
            (links[1], "alpha asks", "beta asks", "alpha"),
        ):
            page = await http.get(href)
            assert page.status_code == 200
            assert mine in page.text and theirs not in page.text
            assert f'Calls of the client <strong class="client-name">{name}</strong>' in page.text
            # The way back to every client's calls under this key.
            assert 'href="/sessions/shared">' in page.text
        both = await http.get("/sessions/shared")
        assert "alpha asks" in both.text and "beta asks" in both.text
        assert "Calls of every client using this key" in both.text
        unknown = await http.get("/sessions/shared?client=nobody")
        assert unknown.status_code == 404 and "no LLM client named" in unknown.text
        elsewhere = await http.get("/sessions/shared?client=alpha&client=beta")
        assert elsewhere.status_code == 400
        # A client without that session: a 404 that names both.
        other = await LLMClient.objects.create(name="gamma")
        await store(other, chat_session("own", [("q", "a")], start=ago(minutes=1)))
        absent = await http.get("/sessions/shared?client=gamma")
        assert absent.status_code == 404
        assert "no session 'shared' of the client 'gamma'" in html.unescape(absent.text)


async def test_a_call_links_to_its_own_clients_session(llmreq_db: object) -> None:
    alpha = await LLMClient.objects.create(name="alpha")
    ids = await store(alpha, chat_session("shared", [("alpha asks", "a")], start=ago(minutes=3)))
    async with web(public_app()) as http:
        page = await http.get(f"/requests/{ids[0]}")
        assert _hrefs(page.text, "/sessions/") == ["/sessions/shared?client=alpha"]


def _errors_cell(listing: str, key: str) -> str:
    row = listing.split(f">{key}</a></td>", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r'data-label="Errors">([^<]*)</td>', row)
    assert len(cells) == 1, row
    return str(cells[0])


async def test_errors_of_a_session_without_responses_are_a_dash(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="bot")
    ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    await store(
        client,
        [
            ("alone", ask, ago(minutes=1), None),  # a request recorded without its response
            ("quiet", ask, ago(minutes=2), chat_answer("ok", usage=None)),  # no usage, no error
            ("used", ask, ago(minutes=3), chat_answer("ok")),
            ("bad", ask, ago(minutes=4), {"status": 500, "error": "boom", "latency_ms": 9.0}),
            ("mixed", ask, ago(minutes=6), None),
            ("mixed", ask, ago(minutes=5), chat_answer("ok", usage=None)),
        ],
    )
    async with web(public_app()) as http:
        listing = (await http.get("/sessions")).text
    assert _errors_cell(listing, "alone") == DASH
    assert _errors_cell(listing, "quiet") == "0"
    assert _errors_cell(listing, "used") == "0"
    assert _errors_cell(listing, "bad") == "1"
    assert _errors_cell(listing, "mixed") == "0"


_WIDEST = """() => {
  const page = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('main *')].filter(
    e => e.getBoundingClientRect().right > page + 1 && !e.closest('.scroll, pre'));
  return {page: document.documentElement.scrollWidth, view: page,
          wide: wide.slice(0, 5).map(e => e.tagName + '.' + e.className)};
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, {"width": 375, "height": 800}])
async def test_a_long_unbroken_name_stays_inside_the_page(
    serve: Any, viewport: dict[str, int]
) -> None:
    name = "n" * 250
    client = await LLMClient.objects.create(name=name)
    await LLMClient.objects.create(name="short")
    await store(client, chat_session("k" * 200, [("hi", "yo")], start=ago(minutes=1)))
    async with serve() as site:
        tab = await site.tab(viewport=viewport)
        for path, shot in (("/sessions", "sessions"), ("/sessions/" + "k" * 200, "session")):
            await tab.open(path)
            await screenshot(tab, f"long-name-{shot}-{viewport['width']}")
            measured = await tab.page.evaluate(_WIDEST)
            assert measured["page"] <= viewport["width"], (path, measured)
            assert measured["wide"] == [], (path, measured)
            table = tab.page.locator("table.sessions")
            if await table.count():
                box = await table.bounding_box()
                assert box is not None and box["width"] <= viewport["width"], (path, box)
        await tab.open("/sessions")
        select = await tab.page.locator("select[name=client]").bounding_box()
        assert select is not None and select["width"] <= min(viewport["width"] - 24, 20 * 16)


@pytest.mark.parametrize("key", [".", "..", "two\nlines"])
async def test_a_key_no_path_segment_carries_opens_from_the_listing(serve: Any, key: str) -> None:
    client = await LLMClient.objects.create(name="dots")
    await store(client, chat_session(key, [("the odd key asks", "yes")], start=ago(minutes=2)))
    await store(client, chat_session("plain", [("the plain key asks", "no")], start=ago(minutes=1)))
    async with serve() as site:
        tab = await site.tab()
        await tab.open("/sessions")
        # A browser resolves "." and ".." in a path away: the link carries the key in its query.
        link = tab.page.locator("td.key a").filter(has_text=key.split("\n")[0]).first
        assert (await link.get_attribute("href") or "").startswith("/session?key=")
        await link.click()
        await tab.page.wait_for_url("**/session?key=*")
        body = tab.page.locator("body")
        await expect(body).to_contain_text("the odd key asks")
        await expect(body).not_to_contain_text("the plain key asks")
        await screenshot(tab, f"odd-key-{len(key)}")
        # The page's own links keep to the key (its "every client's calls" link).
        every = tab.page.get_by_role("link", name="every client's calls under this key")
        assert (await every.get_attribute("href") or "").startswith("/session?key=")


async def test_the_query_form_of_a_session_checks_its_key(llmreq_db: object) -> None:
    async with web(public_app()) as http:
        missing = await http.get("/session")
        assert missing.status_code == 400 and "'key' is required" in html.unescape(missing.text)
        _assert_headed(missing)
        unknown = await http.get("/session", params={"key": "."})
        assert unknown.status_code == 404 and "no session '.'" in html.unescape(unknown.text)
        twice = await http.get("/session?key=a&key=b")
        assert twice.status_code == 400
        too_long = await http.get("/session", params={"key": "k" * 300})
        assert too_long.status_code == 400 and "at most 255" in too_long.text


async def test_bidirectional_controls_are_shown_not_obeyed(llmreq_db: object) -> None:
    rlo = "\u202e"
    client = await LLMClient.objects.create(name=f"bot{rlo}nimda")
    key = f"invoice{rlo}gnp.exe"
    await store(client, chat_session(key, [(f"say {rlo}olleh", "ok")], start=ago(minutes=1)))
    async with web(public_app()) as http:
        listing = await http.get("/sessions")
        href = _hrefs(listing.text, "/sessions/invoice")[0]
        conversation = await http.get(html.unescape(href))
        assert conversation.status_code == 200
        for page in (listing, conversation):
            text = html.unescape(page.text)
            assert rlo not in text
            assert "invoice[U+202E]gnp.exe" in text and "bot[U+202E]nimda" in text
        assert "say [U+202E]olleh" in html.unescape(conversation.text)
        # The link still carries the key itself, to the letter.
        assert urllib.parse.quote(key, safe="") in href
        # A call's JSON writes the control as its JSON escape: copied, it is the same JSON.
        call = await http.get(_hrefs(conversation.text, "/requests/")[0])
        text = html.unescape(call.text)
        assert rlo not in text and '"say \\u202eolleh"' in text


async def test_keys_that_differ_by_a_control_character_are_told_apart(
    llmreq_db: object,
) -> None:
    client = await LLMClient.objects.create(name="bot")
    asked = "the newline key\nasks on two lines"
    await store(client, chat_session("two\nlines", [(asked, "a")], start=ago(minutes=3)))
    await store(client, chat_session("two lines", [("the space key", "b")], start=ago(minutes=2)))
    await store(client, chat_session("tab\there", [("the tab key", "c")], start=ago(minutes=1)))
    async with web(public_app()) as http:
        listing = html.unescape((await http.get("/sessions")).text)
        assert "two[U+000A]lines" in listing and "two lines" in listing
        assert "tab[U+0009]here" in listing
        page = await http.get("/session", params={"key": "two\nlines"})
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert "<title>Session two[U+000A]lines" in text
        assert '<h1 class="key">Session <span>two[U+000A]lines</span></h1>' in text
        assert "the space key" not in text
        # What was said keeps its newlines: only keys are written out.
        assert asked in text
        call = html.unescape((await http.get(_hrefs(page.text, "/requests/")[0])).text)
        assert "two[U+000A]lines</a>" in call


async def test_a_client_past_the_filters_first_500_is_still_named(llmreq_db: object) -> None:
    await LLMClient.get_pymongo_collection().insert_many(
        [{"name": f"c{n:03}", "description": "", **_stamps()} for n in range(500)]
    )
    late = await LLMClient.objects.create(name="zeta-bot")  # sorts after the first 500
    await store(late, chat_session("late-key", [("hello", "hi")], start=ago(minutes=1)))
    async with web(public_app()) as http:
        listing = await http.get("/sessions")
        assert _hrefs(listing.text, "/sessions/late-key") == ["/sessions/late-key?client=zeta-bot"]
        assert '<td data-label="Client">zeta-bot</td>' in listing.text
        session = await http.get("/sessions/late-key?client=zeta-bot")
        assert "<span>zeta-bot</span>" in session.text
        call = await http.get(_hrefs(session.text, "/requests/")[0])
        assert "<tr><th>client</th><td>zeta-bot <span" in call.text
        assert _hrefs(call.text, "/sessions/") == ["/sessions/late-key?client=zeta-bot"]


def _stamps() -> dict[str, Any]:
    now = ago(minutes=5)
    return {"created_at": now, "updated_at": now}
