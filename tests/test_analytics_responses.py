"""The reports over what came back: tokens, errors, latency percentiles, measures, prices."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import InvalidInput, LLMClient, analytics
from llmreq_mongo._reports.latency import nearest_rank
from llmreq_mongo.analytics import Distribution, LatencyStats, Price
from response_history import CALLS, DAY, Call, answer, at, failed, put, seed, token_sum, usage

PRICES = {
    "gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10.0),
    "claude-3-5-sonnet": Price(input_per_mtok=3.0, output_per_mtok=15.0),
}
#: Which entry of PRICES each seeded model takes (decided by hand: the
#: snapshot suffix is dropped, no other prefix counts).
PRICE_OF = {
    "gpt-4o": "gpt-4o",
    "gpt-4o-2024-08-06": "gpt-4o",
    "claude-3-5-sonnet-20241022": "claude-3-5-sonnet",
}


@pytest.fixture
async def history(client: LLMClient) -> dict[str, LLMClient]:
    sales = await LLMClient.objects.create(name="sales-bot")
    await seed(client, sales)
    return {"support": client, "sales": sales}


def calls_of(*, client: str | None = None, session: Any = ..., until: float = 1e9) -> list[Call]:
    return [
        c
        for c in CALLS
        if (client is None or c.client == client)
        and (session is ... or c.session == session)
        and c.hours < until
    ]


def expected_cost(calls: list[Call]) -> float | None:
    cost = None
    for c in calls:
        r = c.response
        if not r or not r["usage"] or r["model"] not in PRICE_OF:
            continue
        price = PRICES[PRICE_OF[r["model"]]]
        cost = (cost or 0.0) + (
            (r["usage"]["input_tokens"] or 0) * price.input_per_mtok
            + (r["usage"]["output_tokens"] or 0) * price.output_per_mtok
        ) / 1e6
    return cost


# -- tokens and errors ---------------------------------------------------------------


async def test_session_summaries_sum_tokens_and_count_errors(
    history: dict[str, LLMClient],
) -> None:
    rows = {r.session_key: r for r in await analytics.session_summaries()}
    assert set(rows) == {"s1", "s2", "s3", "s4"}
    for key, row in rows.items():
        calls = calls_of(session=key)
        assert row.requests == len(calls)
        assert row.input_tokens == token_sum(calls, "input_tokens")
        assert row.output_tokens == token_sum(calls, "output_tokens")
        assert row.errors == sum(failed(c) for c in calls)
        assert row.cost is None and row.unpriced_models == ()  # no prices given
    # The cases the seed was built for, spelt out.
    assert (rows["s1"].input_tokens, rows["s1"].errors) == (150, 1)  # error by `error`
    assert (rows["s2"].input_tokens, rows["s2"].output_tokens) == (None, None)  # none reported
    assert rows["s2"].errors == 1  # error by status 429
    assert (rows["s3"].input_tokens, rows["s3"].output_tokens) == (7, 0)  # 0 is reported, kept
    assert rows["s4"].errors == 1  # status 500, with usage


async def test_top_sessions_and_grouped_summaries_carry_the_same_sums(
    history: dict[str, LLMClient],
) -> None:
    [top] = await analytics.top_sessions(n=1)
    assert top.session_key == "s1" and top.output_tokens == token_sum(
        calls_of(session="s1"), "output_tokens"
    )
    # Grouped by a payload field the seed does not have: one group per session, same sums.
    grouped = await analytics.session_summaries(group_by="model", llm_client=history["sales"])
    assert {(r.session_key, r.group, r.input_tokens) for r in grouped} == {
        ("s3", None, 7),
        ("s4", None, 10),
    }


async def test_client_usage_sums_tokens_and_errors(history: dict[str, LLMClient]) -> None:
    usage_rows = {u.name: u for u in await analytics.client_usage()}
    for name, key in (("support-bot", "support"), ("sales-bot", "sales")):
        calls = calls_of(client=key)
        row = usage_rows[name]
        assert row.requests == len(calls)
        assert row.sessions == len({c.session for c in calls if c.session is not None})
        assert row.input_tokens == token_sum(calls, "input_tokens")
        assert row.output_tokens == token_sum(calls, "output_tokens")
        assert row.errors == sum(failed(c) for c in calls)
    windowed = {u.name: u for u in await analytics.client_usage(since=at(4), until=at(7))}
    support = windowed["support-bot"]
    assert (support.requests, support.sessions, support.errors) == (3, 2, 2)
    assert support.input_tokens is None and support.output_tokens is None


async def test_records_without_any_response_give_none_tokens_and_no_errors(
    client: LLMClient,
) -> None:
    await put(client, "bare", at(1))
    await put(client, "bare", at(2))
    [row] = await analytics.session_summaries()
    assert (row.requests, row.input_tokens, row.output_tokens, row.errors) == (2, None, None, 0)
    [used] = await analytics.client_usage()
    assert (used.input_tokens, used.output_tokens, used.errors) == (None, None, 0)


# -- prices ------------------------------------------------------------------------------


async def test_prices_turn_token_sums_into_a_cost(history: dict[str, LLMClient]) -> None:
    sessions = {r.session_key: r for r in await analytics.session_summaries(prices=PRICES)}
    for key, row in sessions.items():
        assert row.cost == pytest.approx(expected_cost(calls_of(session=key)), rel=1e-12)
    # s1: gpt-4o (100 in, 20 out) + its snapshot (50, 10) priced; gpt-4o-mini reported nothing.
    assert sessions["s1"].cost == pytest.approx((150 * 2.5 + 30 * 10.0) / 1e6)
    assert sessions["s1"].unpriced_models == ()
    assert sessions["s2"].cost is None  # no call reported tokens
    usage_rows = {u.name: u for u in await analytics.client_usage(prices=PRICES)}
    assert usage_rows["support-bot"].cost == pytest.approx(
        expected_cost(calls_of(client="support"))
    )
    sales = usage_rows["sales-bot"]
    assert sales.cost == pytest.approx(expected_cost(calls_of(client="sales")))
    # gpt-4o-mini's 1,300 tokens have no price: named, and left out of the cost.
    assert sales.unpriced_models == ("gpt-4o-mini",)
    top = await analytics.top_sessions(n=1, prices=PRICES)
    assert top[0].cost == sessions["s1"].cost


async def test_a_cost_only_from_unpriced_models_is_none(history: dict[str, LLMClient]) -> None:
    cheap = {"gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.6)}
    rows = {u.name: u for u in await analytics.client_usage(prices=cheap)}
    sales = rows["sales-bot"]
    assert sales.cost == pytest.approx((1000 * 0.15 + 300 * 0.6) / 1e6)
    assert sales.unpriced_models == ("gpt-4o",)
    support = rows["support-bot"]
    assert support.cost is None  # its mini call reported no usage
    assert support.unpriced_models == ("gpt-4o", "gpt-4o-2024-08-06")
    assert (await analytics.client_usage(prices={}))[0].cost is None


async def test_a_call_with_tokens_and_no_model_is_unpriced(client: LLMClient) -> None:
    await put(client, "s", at(1), answer(None, 10.0, tokens=usage(5, 5)))
    await put(client, "s", at(2), answer("gpt-4o", 10.0, tokens=usage(1_000_000, 0)))
    [row] = await analytics.session_summaries(prices=PRICES)
    assert row.cost == pytest.approx(2.5)
    assert row.unpriced_models == (None,)


# -- request_counts(measure=) ----------------------------------------------------------------


async def test_request_counts_measures_tokens(history: dict[str, LLMClient]) -> None:
    window: dict[str, Any] = {"since": DAY, "until": DAY + dt.timedelta(days=2)}
    days = [DAY, DAY + dt.timedelta(days=1)]
    requests = await analytics.request_counts(**window)
    assert [b.count for b in requests] == [
        len([c for c in CALLS if d <= at(c.hours) < d + dt.timedelta(days=1)]) for d in days
    ]
    for measure in ("input_tokens", "output_tokens"):
        buckets = await analytics.request_counts(measure=measure, **window)
        assert [b.start for b in buckets] == days
        assert [b.count for b in buckets] == [
            token_sum([c for c in CALLS if d <= at(c.hours) < d + dt.timedelta(days=1)], measure)
            for d in days
        ]
    hourly = await analytics.request_counts(
        by="hour", measure="output_tokens", since=at(0), until=at(9)
    )
    # 00:00 is empty, 03:00 streamed without usage, 06:00 only a 429: None, never 0.
    assert [b.count for b in hourly] == [None, 20, 10, None, None, None, None, None, 0]
    scoped = await analytics.request_counts(
        measure="input_tokens", session_key="s3", since=DAY, until=at(24)
    )
    assert [b.count for b in scoped] == [7]


async def test_request_counts_measure_with_group_by(client: LLMClient) -> None:
    await put(client, "s", at(1), answer("m", 1.0, tokens=usage(3, 1)), payload={"model": "a"})
    await put(client, "s", at(2), answer("m", 1.0, tokens=usage(4, 1)), payload={"model": "a"})
    await put(client, "s", at(3), answer("m", 1.0), payload={"model": "b"})
    buckets = await analytics.request_counts(measure="input_tokens", group_by="model")
    assert {(b.group, b.count) for b in buckets} == {("a", 7), ("b", None)}


# -- latency ----------------------------------------------------------------------------


def definition(values: list[float], p: int) -> float:
    """Nearest rank by its definition: the smallest value with at least p% of values <= it."""
    n = len(values)
    return min(v for v in values if sum(x <= v for x in values) >= p / 100 * n)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 19, 20, 21, 99, 100, 101, 257])
def test_nearest_rank_matches_its_definition(n: int) -> None:
    rng = random.Random(n)
    values = sorted(rng.uniform(1, 5000) for _ in range(n))
    for p in (1, 25, 50, 90, 95, 99, 100):
        assert nearest_rank(values, p) == definition(values, p), (n, p)
    assert nearest_rank([], 50) is None
    # The textbook example: p50 of 10, 20, 30, 40 is 20 (rank 2), p95 is 40.
    assert nearest_rank([10, 20, 30, 40], 50) == 20
    assert nearest_rank([10, 20, 30, 40], 95) == 40


def expected(values: list[float]) -> Distribution:
    ordered = sorted(values)
    n = len(ordered)
    pick = (lambda p: ordered[math.ceil(p * n / 100) - 1]) if n else (lambda p: None)
    return Distribution(n, pick(50), pick(95), pick(99), ordered[-1] if n else None)


async def test_latency_by_model(history: dict[str, LLMClient]) -> None:
    rows = await analytics.latency(by="model")
    answered = [c.response for c in CALLS if c.response]
    models = {r["model"] for r in answered}
    assert {r.key for r in rows} == models
    for row in rows:
        mine = [r for r in answered if r["model"] == row.key]
        assert isinstance(row, LatencyStats) and row.by == "model"
        assert row.name == row.model == row.key
        assert row.latency_ms == expected([r["latency_ms"] for r in mine])
        assert row.ttft_ms == expected([r["ttft_ms"] for r in mine if r["ttft_ms"] is not None])
    # Busiest first; the calls that named no model are a group of their own, last of equals.
    counts = [r.latency_ms.count for r in rows]
    assert counts == sorted(counts, reverse=True)
    assert rows[0].key == "gpt-4o" and rows[0].latency_ms.count == 4
    nameless = next(r for r in rows if r.key is None)
    assert nameless.latency_ms == Distribution(1, 5.0, 5.0, 5.0, 5.0)
    assert nameless.ttft_ms == Distribution(0, None, None, None, None)


async def test_latency_by_client_and_scoped(history: dict[str, LLMClient]) -> None:
    rows = await analytics.latency(by="client")
    by_id = {r.key: r for r in rows}
    for key, found in history.items():
        row = by_id[found.id]
        assert row.llm_client_id == found.id and row.name == found.name and row.model is None
        mine = [c.response for c in calls_of(client=key) if c.response]
        assert row.latency_ms == expected([r["latency_ms"] for r in mine])
    window = await analytics.latency(
        by="model", since=at(2), until=at(7), llm_client=history["support"]
    )
    assert {r.key: r.latency_ms.count for r in window} == {
        "gpt-4o-2024-08-06": 1,
        "gpt-4o-mini": 1,
        None: 1,
        "claude-3-5-sonnet-20241022": 1,
    }
    assert await analytics.latency(since=at(100)) == []


async def test_latency_percentiles_over_many_calls(client: LLMClient) -> None:
    rng = random.Random(7)
    latencies = [round(rng.lognormvariate(6, 0.8), 3) for _ in range(230)]
    ttfts = {i: round(rng.uniform(5, 90), 3) for i in range(0, 230, 3)}
    order = list(range(230))
    rng.shuffle(order)  # stored out of order
    for i in order:
        await put(client, f"s{i % 5}", at(i / 60), answer("m", latencies[i], ttft=ttfts.get(i)))
    [row] = await analytics.latency()
    assert row.latency_ms == expected(latencies)
    assert row.ttft_ms == expected(list(ttfts.values()))
    # Every percentile is a latency some call had.
    assert {row.latency_ms.p50, row.latency_ms.p95, row.latency_ms.p99} <= set(latencies)


async def test_latency_leaves_out_records_without_response_and_rollups(
    client: LLMClient,
) -> None:
    await put(client, "s", at(1))
    await put(client, "s", at(2), answer("m", 42.0))
    await put(client, "s", at(3), payload={"count": 1}, is_aggregation=True)
    [row] = await analytics.latency(by="client")
    assert row.latency_ms == Distribution(1, 42.0, 42.0, 42.0, 42.0)
    gone = ObjectId()
    ghost = LLMClient(name="ghost")
    ghost.id = gone  # type: ignore[assignment]
    await put(ghost, "s", at(4), answer("m", 1.0))
    names = {r.key: r.name for r in await analytics.latency(by="client")}
    assert names == {client.id: "support-bot", gone: None}


# -- bad input ---------------------------------------------------------------------------

NAIVE = dt.datetime(2026, 1, 1)

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("latency", {"by": "week"}, "must be one of 'model', 'client'"),
    ("latency", {"by": None}, "must be one of"),
    ("latency", {"by": ["model"]}, "must be one of"),
    ("latency", {"since": NAIVE}, "naive"),
    ("latency", {"since": at(2), "until": at(1)}, "must be before"),
    ("latency", {"llm_client": "nope"}, "hex"),
    ("request_counts", {"measure": "tokens"}, "'requests', 'input_tokens' or 'output_tokens'"),
    ("request_counts", {"measure": None}, "measure must be"),
    ("request_counts", {"measure": ["requests"]}, "measure must be"),
    ("client_usage", {"prices": {"gpt-4o": 2.5}}, r"prices\['gpt-4o'\] must be a Price"),
    ("client_usage", {"prices": [("gpt-4o", PRICES["gpt-4o"])]}, "must be a dict"),
    ("client_usage", {"prices": {"": PRICES["gpt-4o"]}}, "non-empty strings"),
    ("client_usage", {"prices": {5: PRICES["gpt-4o"]}}, "non-empty strings"),
    ("session_summaries", {"prices": "gpt-4o=2.5"}, "must be a dict"),
    ("session_summaries", {"prices": {"m": {"input_per_mtok": 1}}}, "must be a Price"),
    ("top_sessions", {"prices": {"m": None}}, "must be a Price"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BAD_CALLS)
async def test_bad_input_is_refused_before_any_query(
    llmreq_engine: object, name: str, kwargs: dict[str, Any], match: str
) -> None:
    # No database is initialised for this test: a query would fail otherwise.
    with pytest.raises(InvalidInput, match=match):
        await getattr(analytics, name)(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_per_mtok": -1, "output_per_mtok": 1}, "zero or more"),
        ({"input_per_mtok": 1, "output_per_mtok": float("nan")}, "finite number"),
        ({"input_per_mtok": float("inf"), "output_per_mtok": 1}, "finite number"),
        ({"input_per_mtok": True, "output_per_mtok": 1}, "finite number"),
        ({"input_per_mtok": "2.5", "output_per_mtok": 1}, "finite number"),
        ({"input_per_mtok": 1, "output_per_mtok": None}, "output_per_mtok"),
        ({"input_per_mtok": 10**400, "output_per_mtok": 1}, "finite number"),
    ],
)
def test_bad_prices_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        Price(**kwargs)


def test_a_price_keeps_its_rates_as_floats() -> None:
    price = Price(input_per_mtok=3, output_per_mtok=15)
    assert (price.input_per_mtok, price.output_per_mtok) == (3.0, 15.0)
    assert Price(0, 0) == Price(input_per_mtok=0.0, output_per_mtok=0.0)  # free models exist


async def test_session_page_carries_the_same_sums(history: dict[str, LLMClient]) -> None:
    page = await analytics.session_page(until=at(48))
    rows = {r.session_key: r for r in page.items}
    assert set(rows) == {"s1", "s2", "s3", "s4"}
    for key, row in rows.items():
        calls = calls_of(session=key)
        assert row.input_tokens == token_sum(calls, "input_tokens")
        assert row.output_tokens == token_sum(calls, "output_tokens")
        assert row.errors == sum(failed(c) for c in calls)
