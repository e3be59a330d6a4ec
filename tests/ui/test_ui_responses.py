"""What came back, in a real browser: answers, tool calls, failures, hostile response bodies."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from playwright.async_api import expect
from uiseed import XSS, ago, anthropic_answer, chat_answer, responses_answer, store

from llmreq_mongo import LLMClient

SYSTEM = {"role": "system", "content": "Be brief."}
ASK = {"role": "user", "content": "What is the weather in Paris?"}
WEATHER = ("get_weather", '{"city": "Paris", "unit": "c"}')
CALLED = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": dict(zip(("name", "arguments"), WEATHER, strict=True)),
        }
    ],
}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "18 °C, sunny"}
ANSWER = "It is 18 °C and sunny in Paris."
CUT = "the stream ended before its final [DONE] event: the body holds what was received"


def _chat(*messages: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [SYSTEM, *messages], "stream": stream}


async def _seed_session(key: str) -> list[Any]:
    """A session of six calls: a streamed tool call, its answer, a 429, a cut stream,
    a truncated answer, and an upstream that could not be reached."""
    bot = await LLMClient.objects.create(name="weather-bot")
    start = ago(hours=1)

    def at(seconds: int) -> dt.datetime:
        return start + dt.timedelta(seconds=seconds)

    more = {"role": "user", "content": "And tomorrow?"}
    records = [
        # A streamed tool call, its arguments assembled from the stream, without usage.
        (
            key,
            _chat(ASK, stream=True),
            at(0),
            chat_answer(
                None, tool=WEATHER, usage=None, stream=True, ttft_ms=240.0, latency_ms=910.0
            ),
        ),
        (key, _chat(ASK, CALLED, RESULT), at(5), chat_answer(ANSWER, usage=(120, 14))),
        (
            key,
            _chat(ASK, CALLED, RESULT, {"role": "assistant", "content": ANSWER}, more),
            at(60),
            {
                "status": 429,
                "body": {"error": {"type": "tokens", "message": "Rate limit reached"}},
                "error": "tokens: Rate limit reached",
                "latency_ms": 95.0,
            },
        ),
        # Sent again, cut in the middle of its stream.
        (
            key,
            _chat(ASK, CALLED, RESULT, {"role": "assistant", "content": ANSWER}, more, stream=True),
            at(62),
            chat_answer(
                "Tomorrow will be",
                usage=None,
                stream=True,
                ttft_ms=300.0,
                error=CUT,
            ),
        ),
        (
            key,
            _chat(ASK, CALLED, RESULT, {"role": "assistant", "content": ANSWER}, more),
            at(64),
            chat_answer(None, body=None, truncated=True, usage=(130, 9000), latency_ms=61000.0),
        ),
        (
            key,
            _chat(ASK, CALLED, RESULT, {"role": "assistant", "content": ANSWER}, more),
            at(90),
            {"error": "ConnectError: [Errno 111] Connection refused", "latency_ms": 3.0},
        ),
    ]
    return await store(bot, records)


async def test_a_session_shows_each_answer_under_its_request(serve: Any) -> None:
    key = "weather/1"
    ids = await _seed_session(key)
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        await tab.open("/sessions/weather%2F1")
        calls = page.locator("li.call")
        await expect(calls).to_have_count(6)

        # 1: the question, then the model's call of the tool, assembled from its stream.
        first = calls.nth(0)
        await expect(first.locator(".msg .role")).to_have_text(["system", "user", "tool call"])
        await expect(first.locator(".tool-call .tool-name")).to_have_text("get_weather")
        # Plain arguments read as written, each under its name.
        await expect(first.locator(".tool-call .arguments dt")).to_have_text(["city", "unit"])
        await expect(first.locator(".tool-call .arguments dd")).to_have_text(["Paris", "c"])
        figures = first.locator(".figures")
        await expect(figures).to_contain_text("gpt-4o-2024-08-06")
        await expect(figures).to_contain_text("tokens\u2014 in / \u2014 out")  # no usage: no zero
        await expect(figures).to_contain_text("910 ms (first token 240 ms)")
        await expect(figures).to_contain_text("finishtool_calls")
        await expect(first.locator(".tag")).to_have_text(["stream"])

        # 2: the call the client sent back is not new; the tool's output is, then the answer.
        second = calls.nth(1)
        await expect(second).to_contain_text("after 3 earlier messages")
        await expect(second.locator(".msg .role")).to_have_text(["tool", "assistant"])
        await expect(second.locator(".msg.answer .text")).to_have_text(ANSWER)
        await expect(second.locator(".figures")).to_contain_text("120 in / 14 out")

        # 3: a 429, shown as a failure with its error and status.
        third = calls.nth(2)
        await expect(third).to_have_class("call failed")
        await expect(third.locator(".msg .role")).to_have_text(["user", "error"])
        await expect(third.locator(".response-error .text")).to_have_text(
            "429 tokens: Rate limit reached"
        )
        await expect(third.locator(".tag.bad")).to_have_text("failed")

        # 4: sent again and cut: what was received, then why it is incomplete.
        fourth = calls.nth(3)
        await expect(fourth).to_contain_text(
            "No new messages: the same 6 messages as the call before"
        )
        await expect(fourth.locator(".msg.answer .text")).to_have_text("Tomorrow will be")
        await expect(fourth.locator(".response-error")).to_contain_text("the stream ended before")

        # 5: a body over the capture limit: its figures, and no body.
        fifth = calls.nth(4)
        await expect(fifth).to_contain_text("over the capture limit and was not kept")
        await expect(fifth.locator(".figures")).to_contain_text("130 in / 9,000 out")
        await expect(fifth.locator(".figures")).to_contain_text("61.0 s")

        # 6: the upstream never answered.
        sixth = calls.nth(5)
        await expect(sixth.locator(".figures")).to_contain_text("statusno response")
        await expect(sixth.locator(".response-error .text")).to_have_text(
            "ConnectError: [Errno 111] Connection refused"
        )

        # The call's own page: every response field, the body as JSON.
        await calls.nth(1).get_by_role("link", name="Call 2").click()
        await expect(page.locator("h1")).to_contain_text(str(ids[1]))
        fields = page.locator("table.response-fields")
        await expect(fields).to_contain_text("status200")
        await expect(fields).to_contain_text("response idchatcmpl-1")
        await expect(fields).to_contain_text("120 in / 14 out (total 134;")
        await expect(fields).to_contain_text("first token\u2014")
        await expect(page.locator(".answer-block .msg.answer .text")).to_have_text(ANSWER)
        response_json = page.locator("#response-json")
        shown = json.loads(await response_json.text_content() or "")
        assert shown["body"]["choices"][0]["message"]["content"] == ANSWER
        assert (
            shown["usage"]["input_tokens"] == 120
            and shown["usage"]["cache_read_input_tokens"] is None
        )
        assert await page.locator("details.json").count() == 3

        await tab.open(f"/requests/{ids[4]}")
        await expect(page.locator("table.response-fields")).to_contain_text("truncatedyes")
        await tab.open(f"/requests/{ids[5]}")
        await expect(page.locator("table.response-fields")).to_contain_text("statusno response")
        await expect(page.locator("table.response-fields")).to_contain_text("ConnectError")


async def test_the_response_json_collapses_and_copies(serve: Any) -> None:
    ids = await _seed_session("copy-me")
    async with serve() as site:
        tab = await site.tab()
        await tab.page.context.grant_permissions(
            ["clipboard-read", "clipboard-write"], origin=site.origin
        )
        page = tab.page
        await tab.open(f"/requests/{ids[1]}")
        copy = page.locator("button.copy[data-copy='response-json']")
        await copy.click()
        await expect(copy).to_have_text("Copied")
        copied = await page.evaluate("navigator.clipboard.readText()")
        assert json.loads(copied)["body"]["choices"][0]["message"]["content"] == ANSWER
        block = page.locator("details.json").nth(1)
        await expect(block.locator("summary")).to_have_text("Response JSON")
        await block.locator("summary").click()
        await expect(block).not_to_have_attribute("open", "")


async def test_other_apis_answers_on_a_session_page(serve: Any) -> None:
    bot = await LLMClient.objects.create(name="multi")
    start = ago(minutes=30)
    anthropic = {
        "model": "claude-sonnet-4-20250514",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Add 1 and 1"}],
    }
    responses = {"model": "gpt-4o-mini", "instructions": "Summarise.", "input": "A long report."}
    await store(
        bot,
        [
            (
                "multi",
                anthropic,
                start,
                anthropic_answer("Checking.", tool=("run", {"code": "1+1"})),
            ),
            ("multi", responses, start + dt.timedelta(seconds=1), responses_answer("- Short")),
        ],
    )
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        await tab.open("/sessions/multi")
        first, second = page.locator("li.call").nth(0), page.locator("li.call").nth(1)
        await expect(first.locator(".msg .role")).to_have_text(
            ["system", "user", "assistant", "tool call"]
        )
        await expect(first.locator(".msg.answer .text").first).to_have_text("Checking.")
        await expect(first.locator(".tool-call .arguments dd")).to_have_text("1+1")
        await expect(first.locator(".figures")).to_contain_text("claude-sonnet-4-20250514")
        await expect(first.locator(".figures")).to_contain_text("finishtool_use")
        await expect(second.locator(".msg .text")).to_have_text(
            ["Summarise.", "A long report.", "- Short"]
        )


async def _no_script_ran(tab: Any) -> None:
    assert await tab.page.evaluate("typeof window.pwned") == "undefined"
    assert (
        await tab.page.locator("main img, main svg[onload], main script, main iframe").count() == 0
    )


async def test_hostile_response_bodies_render_as_text_and_run_nothing(serve: Any) -> None:
    bot = await LLMClient.objects.create(name="hostile")
    hostile_tool = (XSS[0], json.dumps({"url": XSS[2], "html": XSS[1]}))
    answer = chat_answer(
        XSS[1],
        tool=hostile_tool,
        model=XSS[3],
        response_id=XSS[0],
        finish_reasons=[XSS[1]],
    )
    answer["body"]["choices"][0]["message"]["refusal"] = XSS[3]
    failed = {"status": 500, "error": XSS[0] + XSS[2], "latency_ms": 5.0, "body": {"error": XSS[1]}}
    # A body of no known shape is shown as JSON: still text.
    odd = chat_answer(None, body={"html": XSS[0], "a.b$": XSS[2]})
    thinking = anthropic_answer(XSS[2])
    thinking["body"]["content"].insert(0, {"type": "thinking", "thinking": XSS[3]})
    start = ago(minutes=10)
    ids = await store(
        bot,
        [
            ("x", _chat(ASK), start, answer),
            ("x", _chat(ASK), start + dt.timedelta(seconds=1), failed),
            ("x", _chat(ASK), start + dt.timedelta(seconds=2), odd),
            ("x", _chat(ASK), start + dt.timedelta(seconds=3), thinking),
        ],
    )
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        await tab.open("/sessions/x")
        calls = page.locator("li.call")
        first = calls.nth(0)
        await expect(first.locator(".msg.answer.kind-refusal .text")).to_have_text(XSS[3])
        await expect(first.locator(".msg.answer.kind-text .text")).to_have_text(XSS[1])
        await expect(first.locator(".tool-name")).to_have_text(XSS[0])
        await expect(first.locator(".tool-call")).to_contain_text(XSS[2])
        await expect(first.locator(".tool-call .arguments dt")).to_have_text(["url", "html"])
        await expect(first.locator(".figures")).to_contain_text(XSS[3])
        await expect(first.locator(".figures")).to_contain_text(XSS[1])
        await expect(calls.nth(1).locator(".response-error")).to_contain_text(XSS[0] + XSS[2])
        await expect(calls.nth(2).locator("pre.payload")).to_contain_text(XSS[0])
        await expect(calls.nth(3).locator(".kind-thinking .text")).to_have_text(XSS[3])
        await expect(calls.nth(3).locator(".kind-text .text")).to_have_text(XSS[2])
        hrefs = await page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert all(not h.lower().startswith("javascript:") for h in hrefs)
        await _no_script_ran(tab)

        for record_id in ids:
            await tab.open(f"/requests/{record_id}")
            await expect(page.locator("#response-json")).to_be_visible()
            await _no_script_ran(tab)
        await tab.open(f"/requests/{ids[0]}")
        await expect(page.locator("table.response-fields")).to_contain_text(XSS[0])  # the id
        await expect(page.locator("#response-json")).to_contain_text(XSS[1].replace('"', '\\"'))


async def test_overview_and_sessions_show_tokens_errors_and_latency(serve: Any) -> None:
    bot = await LLMClient.objects.create(name="bot")
    quiet = await LLMClient.objects.create(name="quiet")
    start = ago(hours=2)
    latencies = [100.0, 200.0, 300.0, 400.0]
    records: list[Any] = [
        (
            "s1",
            _chat(ASK),
            start + dt.timedelta(seconds=i),
            chat_answer("ok", usage=(10 * (i + 1), i + 1), latency_ms=ms),
        )
        for i, ms in enumerate(latencies)
    ]
    records.append(
        (
            "s2",
            _chat(ASK),
            start + dt.timedelta(minutes=5),
            {"status": 500, "error": "boom", "latency_ms": 5000.0},
        )
    )
    records.append(
        (
            "s2",
            _chat(ASK),
            start + dt.timedelta(minutes=6),
            chat_answer("no usage", usage=None, latency_ms=50.0, model="gpt-4o-mini"),
        )
    )
    await store(bot, records)
    await store(quiet, [("q", _chat(ASK), start, None)])  # a request recorded alone
    async with serve() as site:
        tab = await site.tab()
        page = tab.page
        await tab.open("/")
        rows = page.locator("table.clients tbody tr")
        cells = rows.nth(0).locator("td")
        # Tokens summed over the calls that reported them; the 500 is an error;
        # latency p50 and p95 by nearest rank over the six calls.
        await expect(cells).to_have_text(
            [
                re.compile("^bot"),
                "6",
                "2",
                "100",
                "10",
                "1",
                "200 ms",
                "5,000 ms",
                re.compile("UTC$"),
            ]
        )
        # A client whose calls carry no response: unknown, not zero.
        await expect(rows.nth(1).locator("td").nth(3)).to_have_text("\u2014")
        await expect(rows.nth(1).locator("td").nth(5)).to_have_text("\u2014")
        chart = page.locator("table.latency-rows tbody tr")
        await expect(chart).to_have_count(3)
        await expect(chart.nth(0).locator("td").nth(0)).to_have_text("gpt-4o-2024-08-06")
        await expect(chart.nth(0).locator("td").nth(1)).to_have_text("4")
        await expect(chart.nth(0).locator("td").nth(2)).to_have_text("200 ms")
        widths = await page.locator("svg.lat rect.p95").evaluate_all(
            "els => els.map(e => e.getAttribute('width'))"
        )
        assert max(map(float, widths)) == 100.0
        await expect(page.locator(".placeholder")).to_have_count(0)

        await tab.open("/sessions")
        keys = page.locator("table.sessions tbody tr")
        await expect(keys.nth(0).locator("td.key")).to_have_text("s2")
        await expect(keys.nth(0).locator("td").nth(5)).to_have_text("\u2014")  # no usage reported
        await expect(keys.nth(0).locator("td").nth(6)).to_have_text("1")
        await expect(keys.nth(1).locator("td").nth(5)).to_have_text("100 in / 10 out")
        await expect(keys.nth(1).locator("td").nth(6)).to_have_text("0")
