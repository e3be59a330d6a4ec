"""The view model: what the pages show of a call's outcome, and the chart geometry."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from uiseed import anthropic_answer, chat_answer, responses_answer

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo.analytics import CountBucket
from llmreq_mongo.integrations.ui.charts import bar_chart
from llmreq_mongo.integrations.ui.turns import Part, answer_text, chat_view, response_parts
from llmreq_mongo.integrations.ui.views import DASH, NO_USAGE, call_figures, response_payload

UTC = dt.timezone.utc


async def test_a_record_without_a_response_shows_dashes(client: LLMClient) -> None:
    record = await LLMClientRequest.objects.create(
        llm_client=client, request={"model": "gpt-4o", "messages": []}, session_key="s"
    )
    figures = call_figures(record)
    assert figures.model == "gpt-4o"
    assert not figures.recorded
    assert {figures.tokens_in, figures.tokens_out, figures.latency, figures.status} == {DASH}
    assert figures.ttft == DASH and figures.parts is None
    assert figures.error == DASH
    assert response_payload(record) is None
    assert {NO_USAGE.tokens_in, NO_USAGE.errors, NO_USAGE.latency_p50} == {DASH}


async def test_a_record_with_a_response_shows_what_it_carries(client: LLMClient) -> None:
    record = await LLMClientRequest.objects.create(
        llm_client=client,
        request={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        response=chat_answer(
            "Hello!", usage=(1200, 35), latency_ms=15400.0, ttft_ms=380.5, stream=True
        ),
    )
    figures = call_figures(record)
    assert figures.recorded and not figures.failed and figures.stream
    assert figures.model == "gpt-4o-2024-08-06"  # the model that answered
    assert (figures.tokens_in, figures.tokens_out) == ("1,200", "35")
    assert (figures.latency, figures.ttft) == ("15.4 s", "380 ms")
    assert (figures.status, figures.error, figures.finish) == ("200", DASH, "stop")
    assert figures.parts == (Part("text", "Hello!"),)
    dumped = response_payload(record)
    assert dumped["usage"]["input_tokens"] == 1200 and dumped["body"]["choices"]


async def test_failures_and_missing_figures(client: LLMClient) -> None:
    async def figures(response: dict[str, Any]) -> Any:
        record = await LLMClientRequest.objects.create(
            llm_client=client, request={"model": "m"}, response=response
        )
        return call_figures(record)

    unreachable = await figures({"error": "ConnectError: refused", "latency_ms": 2})
    assert unreachable.failed and unreachable.status == "no response"
    assert (unreachable.tokens_in, unreachable.ttft, unreachable.model) == (DASH, DASH, "m")
    assert unreachable.parts is None
    limited = await figures(
        {"status": 429, "body": {"error": {"message": "slow"}}, "error": "slow", "latency_ms": 9}
    )
    assert limited.failed and limited.status == "429" and limited.parts is None
    cut = await figures(
        chat_answer("Half an ans", usage=None, stream=True, error="the stream ended", ttft_ms=1)
    )
    assert cut.failed and cut.status == "200" and cut.parts == (Part("text", "Half an ans"),)
    assert (cut.tokens_in, cut.tokens_out) == (DASH, DASH)  # no usage reported: not zero
    big = await figures(chat_answer(None, body=None, truncated=True))
    assert big.truncated and big.parts is None and big.tokens_in == "31"


def test_response_parts_of_each_api() -> None:
    chat = chat_answer("Let me look.", tool=("get_weather", '{"city": "Paris"}'))["body"]
    assert response_parts(chat) == (
        Part("text", "Let me look."),
        Part(
            "tool_call",
            '{\n  "city": "Paris"\n}',
            "get_weather",
            'get_weather({"city":"Paris"})',
            (("city", "Paris"),),
        ),
    )
    # Arguments that are not an object of plain values are shown as pretty JSON only.
    nested = chat_answer(None, tool=("f", '{"a": {"b": [1, 2]}}'))["body"]
    (call,) = response_parts(nested) or ()
    assert (
        call.fields == ()
        and call.text == '{\n  "a": {\n    "b": [\n      1,\n      2\n    ]\n  }\n}'
    )
    messages = anthropic_answer("Checking.", tool=("run", {"code": "1+1"}))["body"]
    messages["content"].insert(0, {"type": "thinking", "thinking": "The user wants..."})
    assert [(p.kind, p.name) for p in response_parts(messages)] == [
        ("thinking", ""),
        ("text", ""),
        ("tool_call", "run"),
    ]
    responses = responses_answer("Done.")["body"]
    responses["output"].insert(0, {"type": "reasoning", "summary": [{"text": "Think."}]})
    responses["output"].append({"type": "function_call", "name": "f", "arguments": "not json"})
    assert response_parts(responses) == (
        Part("thinking", "Think."),
        Part("text", "Done."),
        Part("tool_call", "not json", "f", "f(not json)"),
    )
    assert response_parts({"choices": []}) == ()  # an answer with nothing in it
    assert response_parts({"error": {"message": "x"}}) is None
    assert response_parts("plain text") is None


def test_requests_of_each_api_read_as_chat_messages() -> None:
    anthropic = {
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Run it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "t", "name": "run", "input": {"code": "1+1"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "2"}],
            },
        ],
    }
    assert chat_view(anthropic)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Run it"},
        {"role": "assistant", "content": 'Checking.\n\u2192 run({"code":"1+1"})'},
        {"role": "tool", "content": "2"},
    ]
    responses = {"instructions": "Summarise.", "input": "A long text"}
    assert chat_view(responses)["messages"] == [
        {"role": "system", "content": "Summarise."},
        {"role": "user", "content": "A long text"},
    ]
    listed = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]}
    assert chat_view(listed)["messages"] == [{"role": "user", "content": "Hi"}]
    assert chat_view({"prompt": "x"}) == {"prompt": "x"}  # not a chat: unchanged
    assert chat_view({"messages": [{"content": "no role"}]}) == {
        "messages": [{"content": "no role"}]
    }


def test_the_answer_reads_as_the_next_request_sends_it_back() -> None:
    """So a session page shows an answer once, with its call, not again as new."""
    call = ("run_python", json.dumps({"code": "print(1)"}))
    chat = chat_answer(None, tool=call)["body"]
    resent = {
        "role": "assistant",
        "content": None,
        "tool_calls": chat["choices"][0]["message"]["tool_calls"],
    }
    assert chat_view({"messages": [resent]})["messages"][0]["content"] == answer_text(
        response_parts(chat) or ()
    )
    messages = anthropic_answer("Checking.", tool=("run", {"code": "1+1"}))["body"]
    resent = {"role": "assistant", "content": messages["content"]}
    assert chat_view({"messages": [resent]})["messages"][0]["content"] == answer_text(
        response_parts(messages) or ()
    )


def test_bar_chart_geometry() -> None:
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    buckets = [CountBucket(start + dt.timedelta(days=i), c) for i, c in enumerate([0, 4, 2])]
    chart = bar_chart(buckets, by="day")
    assert (chart.width, chart.peak, chart.total) == (30, 4, 6)
    assert [b.height for b in chart.bars] == [0.0, 100.0, 50.0]
    assert [b.y + b.height for b in chart.bars] == [100.0, 100.0, 100.0]
    assert [b.label for b in chart.bars] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert chart.bars[0].tick == "03-01"
    empty = bar_chart([], by="hour")
    assert (empty.bars, empty.peak) == ((), 0)
    hours = bar_chart([CountBucket(start + dt.timedelta(hours=h), 1) for h in range(25)], by="hour")
    assert sum(1 for b in hours.bars if b.tick) <= 7
