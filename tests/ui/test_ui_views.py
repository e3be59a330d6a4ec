"""The view model: what the pages show of a call's outcome, and the chart geometry."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo.analytics import CountBucket
from llmreq_mongo.integrations.ui.charts import bar_chart
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
    assert figures.error == DASH
    assert response_payload(record) is None
    assert {NO_USAGE.tokens_in, NO_USAGE.errors, NO_USAGE.latency_p50} == {DASH}


def test_a_record_with_a_response_shows_what_it_carries() -> None:
    response = {"tokens_in": 1200, "tokens_out": 35, "latency_ms": 15400.0, "status": "ok"}
    record = SimpleNamespace(request={"model": 3}, response=response)
    figures = call_figures(record)
    assert figures.recorded
    assert figures.model == DASH  # a model that is not text is not shown
    assert (figures.tokens_in, figures.tokens_out) == ("1,200", "35")
    assert figures.latency == "15.4 s"
    assert (figures.status, figures.error) == ("ok", DASH)
    assert response_payload(record) == response
    odd_response = {"tokens_in": True, "latency_ms": -1}
    odd = call_figures(SimpleNamespace(request=None, response=odd_response))
    assert (odd.tokens_in, odd.latency) == (DASH, DASH)


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
