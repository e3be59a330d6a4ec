"""The history pages over HTTP: protection, headers, methods, keys in URLs, bad input."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from uibrowser import public_app
from uiseed import ago, chat_session, page_paths, store

from llmreq_mongo import InvalidInput, LLMClient
from llmreq_mongo.integrations.fastapi import history_ui
from llmreq_mongo.integrations.ui import SECURITY_HEADERS

KEYS = ["a/b/c", "été 東京", "100%", "%2F", "q?x=1#frag", "a+b&c=d", " spaced ", "\\back"]


def web(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_refused_without_protection_unless_public() -> None:
    with pytest.raises(InvalidInput, match="dependencies=\\[Depends"):
        history_ui()
    with pytest.raises(InvalidInput, match="choose one"):
        history_ui(dependencies=[Depends(lambda: None)], public=True)
    with pytest.raises(InvalidInput, match=r"fastapi\.Depends"):
        history_ui(dependencies=[lambda: None])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="public must be"):
        history_ui(public="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="title"):
        history_ui(public=True, title="")
    assert history_ui(public=True).routes


def test_missing_extra_is_a_clear_error() -> None:
    # A real interpreter in which Jinja2 cannot be imported.
    code = (
        "import sys; sys.modules['jinja2'] = None\n"
        "from llmreq_mongo.errors import ExtraMissing\n"
        "from llmreq_mongo.integrations.fastapi import history_ui\n"
        "try:\n    history_ui(public=True)\n"
        "except ExtraMissing as exc:\n    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith('ui | llmreq_mongo.integrations.ui needs the "ui" extra')
    assert 'pip install "llmreq-mongo[ui]"' in out.stdout


async def test_headers_methods_and_title(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="bot")
    ids = await store(client, chat_session("s", [("hi", "yo")], start=ago(minutes=1)))
    app = FastAPI()
    app.include_router(history_ui(public=True, title="Acme <LLM>"), prefix="/h")
    async with web(app) as http:
        for path in (*page_paths("/h", ids[0]), "/h/static/ui.css"):
            response = await http.get(path)
            for name, value in SECURITY_HEADERS.items():
                assert response.headers[name] == value, (path, name)
        page = await http.get("/h/")
        assert "<title>Overview · Acme &lt;LLM&gt;</title>" in page.text
        assert "style=" not in page.text and "<script>" not in page.text
        assert (await http.head("/h/sessions")).status_code == 200
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            refused = await http.request(method, "/h/sessions")
            assert refused.status_code == 405
            assert refused.headers["allow"] == "GET, HEAD"
            assert refused.headers["content-security-policy"].startswith("default-src 'self'")
        assert (await http.get("/h/static/other.css")).status_code == 404
        assert (await http.get("/h/static/../pages.py")).status_code == 404
        css = await http.get("/h/static/ui.css")
        assert css.headers["content-type"].startswith("text/css")


async def test_session_keys_travel_in_urls_and_back(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="keys")
    for i, key in enumerate(KEYS):
        await store(
            client,
            [
                (
                    key,
                    {"model": "m", "messages": [{"role": "user", "content": f"message {i}"}]},
                    ago(minutes=i + 1),
                )
            ],
        )
    async with web(public_app("/p")) as http:
        listing = await http.get("/p/sessions")
        for i, key in enumerate(KEYS):
            href = "/p/sessions/" + urllib.parse.quote(key, safe="") + "?client=keys"
            assert f'href="{href.replace("&", "&amp;")}"' in listing.text, key
            page = await http.get(href)
            assert page.status_code == 200, key
            assert f"message {i}" in page.text
        # A slash written as such reaches the same session as its encoded form.
        assert "message 0" in (await http.get("/p/sessions/a/b/c")).text
        too_long = await http.get("/p/sessions/" + "k" * 300)
        assert too_long.status_code == 400
        assert "at most 255" in too_long.text


async def test_mounted_app_links_follow_root_path(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="mounted")
    await store(client, chat_session("m-1", [("hi", "yo")], start=ago(minutes=1)))
    outer = FastAPI()
    outer.mount("/tools", public_app("/history"))
    async with web(outer) as http:
        page = await http.get("/tools/history/sessions")
        assert page.status_code == 200
        assert 'href="/tools/history/sessions/m-1?client=mounted"' in page.text
        assert 'href="/tools/history/static/ui.css"' in page.text
        assert (await http.get("/tools/history/sessions/m-1")).status_code == 200


async def test_bad_input_is_400_or_404_never_500(llmreq_db: object) -> None:
    await LLMClient.objects.create(name="bot")
    cases: list[tuple[str, int]] = [
        ("/requests/" + "g" * 24, 400),
        ("/requests/12345", 400),
        ("/requests/" + "a" * 24, 404),
        ("/sessions?after=" + "A" * 9000, 400),
        ("/sessions?after=%00", 400),
        ("/sessions?window=7d&after=AAAA", 400),
        ("/sessions?prefix=" + "p" * 256, 400),
        ("/sessions?client=", 200),
        ("/?window=", 400),
        ("/sessions/%00", 404),
        ("/sessions?window=all&window=7d", 400),
        ('/sessions?filter={"$where":1}&sort=-_id', 200),
    ]
    async with web(public_app()) as http:
        for path, status in cases:
            response = await http.get(path)
            assert response.status_code == status, (path, response.text[:300])
            assert response.headers["content-type"].startswith("text/html")


def _cursor_of(page: Any) -> str:
    marker = 'rel="next" href="'
    href = page.text.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
    return str(query["after"][0])


async def test_a_cursor_belongs_to_its_filters(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="bot")
    await store(client, [(f"k{i:02d}", {"n": i}, ago(minutes=i + 1)) for i in range(60)])
    async with web(public_app()) as http:
        first = await http.get("/sessions")
        cursor = _cursor_of(first)
        second = await http.get("/sessions", params={"after": cursor})
        assert second.status_code == 200 and "k50" in second.text
        other = await http.get("/sessions", params={"after": cursor, "prefix": "k"})
        assert other.status_code == 400
        assert "belongs to another query" in other.text


async def test_a_long_session_pages_its_calls(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="long")
    start = ago(hours=1)
    turns = [(f"question {i}", f"answer {i}") for i in range(501)]
    await store(client, chat_session("long", turns, start=start))
    async with web(public_app()) as http:
        first = await http.get("/sessions/long")
        assert first.text.count('class="call"') == 500
        assert "question 499" in first.text and "question 500" not in first.text
        assert "more on the next page" in first.text
        href = first.text.split('rel="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        assert href.startswith("/sessions/long?after=")
        later = await http.get(href)
        assert later.status_code == 200
        assert later.text.count('class="call"') == 1
        assert ">Call 501</a>" in later.text
        assert "question 500" in later.text and "continued from the previous page" in later.text
        # Call 501 shows what it adds to call 500, the last of the first page, not all 1,001
        # messages before it.
        assert "question 499" not in later.text and "answer 0" not in later.text
        assert later.text.count('class="msg') <= 3, later.text
        assert 'href="/sessions/long">First calls</a>' in later.text
        assert 'rel="next"' not in later.text
