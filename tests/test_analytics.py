"""``llmreq_mongo.analytics``: session summaries, time buckets, client usage, top sessions."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, analytics
from llmreq_mongo._documents import request_document, validate_request
from llmreq_mongo.analytics import ClientUsage, CountBucket, SessionSummary

UTC = dt.timezone.utc
DAY = dt.datetime(2026, 3, 2, tzinfo=UTC)


def at(hours: float) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours)


async def put(
    client: LLMClient | ObjectId,
    session: str | None,
    when: dt.datetime,
    payload: Any = None,
    *,
    is_aggregation: bool = False,
) -> ObjectId:
    if isinstance(client, ObjectId):  # a client that no longer exists
        ghost = LLMClient(name="ghost")
        ghost.id = client  # type: ignore[assignment]
        client = ghost
    checked = validate_request(
        client, payload or {"q": 1}, session, is_aggregation, client_model=LLMClient
    )
    doc = request_document(checked, record_id=ObjectId(), now=when)
    await LLMClientRequest.get_pymongo_collection().insert_one(doc)
    return doc["_id"]


@pytest.fixture
async def two_clients(client: LLMClient) -> tuple[LLMClient, LLMClient]:
    """support-bot: s1 (3 requests), s2 (1); sales-bot: s3 (2), one without a session.

    Plus a rollup record in s1 that must never count.
    """
    other = await LLMClient.objects.create(name="sales-bot")
    await put(client, "s1", at(1), {"model": "gpt-4o"})
    await put(client, "s1", at(2), {"model": "gpt-4o"})
    await put(client, "s1", at(26), {"model": "mini"})
    await put(client, "s2", at(3), {"model": "mini"})
    await put(other, "s3", at(4), {"model": "gpt-4o"})
    await put(other, "s3", at(5))
    await put(other, None, at(6))
    await put(client, "s1", at(27), {"count": 99}, is_aggregation=True)
    return client, other


# -- session_summaries -----------------------------------------------------------


async def test_session_summaries_most_recent_first(
    two_clients: tuple[LLMClient, LLMClient],
) -> None:
    client, other = two_clients
    rows = await analytics.session_summaries()
    assert rows == [
        SessionSummary("s1", ObjectId(client.id), 3, at(1), at(26)),
        SessionSummary("s3", ObjectId(other.id), 2, at(4), at(5)),
        SessionSummary("s2", ObjectId(client.id), 1, at(3), at(3)),
    ]
    assert all(r.first_at.tzinfo is not None for r in rows)
    assert [r.session_key for r in await analytics.session_summaries(limit=2)] == ["s1", "s3"]


async def test_session_summaries_by_client_and_window(
    two_clients: tuple[LLMClient, LLMClient],
) -> None:
    client, _ = two_clients
    for ref in (client, client.id, str(client.id)):
        rows = await analytics.session_summaries(llm_client=ref)
        assert [(r.session_key, r.requests) for r in rows] == [("s1", 3), ("s2", 1)]
    # [since, until): a request exactly at since counts, one exactly at until does not.
    rows = await analytics.session_summaries(since=at(2), until=at(26))
    assert [(r.session_key, r.requests) for r in rows] == [("s3", 2), ("s2", 1), ("s1", 1)]
    assert await analytics.session_summaries(since=at(100)) == []


async def test_session_summaries_grouped_by_a_payload_field(
    two_clients: tuple[LLMClient, LLMClient],
) -> None:
    client, _ = two_clients
    rows = await analytics.session_summaries(llm_client=client, group_by="model")
    assert {(r.session_key, r.group, r.requests) for r in rows} == {
        ("s1", "gpt-4o", 2),
        ("s1", "mini", 1),
        ("s2", "mini", 1),
    }
    everyone = await analytics.session_summaries(group_by="model")
    assert ("s3", None, 1) in {(r.session_key, r.group, r.requests) for r in everyone}


async def test_group_by_reaches_nested_and_escaped_keys(client: LLMClient) -> None:
    await put(client, "s", at(1), {"opts": {"mode": "fast", "50%": "x"}})
    await put(client, "s", at(2), {"opts": {"mode": "slow", "50%": "x"}})
    for path in ("opts__mode", "opts.mode"):
        rows = await analytics.session_summaries(group_by=path)
        assert {(r.group, r.requests) for r in rows} == {("fast", 1), ("slow", 1)}
    # "%" is stored escaped ("50%25"); the path is escaped the same way.
    buckets = await analytics.request_counts(group_by="opts__50%")
    assert [(b.group, b.count) for b in buckets] == [("x", 2)]


# -- top_sessions ----------------------------------------------------------------


async def test_top_sessions_busiest_first(two_clients: tuple[LLMClient, LLMClient]) -> None:
    client, other = two_clients
    top = await analytics.top_sessions(n=2)
    assert [(r.session_key, r.requests) for r in top] == [("s1", 3), ("s3", 2)]
    mine = await analytics.top_sessions(llm_client=client, since=at(2))
    assert [(r.session_key, r.requests) for r in mine] == [("s1", 2), ("s2", 1)]
    assert [r.llm_client_id for r in await analytics.top_sessions(llm_client=other)] == [
        ObjectId(other.id)
    ]


# -- request_counts --------------------------------------------------------------


async def test_request_counts_by_day_includes_empty_days(
    two_clients: tuple[LLMClient, LLMClient],
) -> None:
    buckets = await analytics.request_counts(since=DAY - dt.timedelta(days=1), until=at(72))
    assert buckets == [
        CountBucket(DAY - dt.timedelta(days=1), 0),
        CountBucket(DAY, 6),
        CountBucket(DAY + dt.timedelta(days=1), 1),
        CountBucket(DAY + dt.timedelta(days=2), 0),
    ]
    assert all(
        b.start.tzinfo is not None and b.start.utcoffset() == dt.timedelta(0) for b in buckets
    )
    # Without a window: from the first bucket with a request to the last.
    assert [b.count for b in await analytics.request_counts()] == [6, 1]


async def test_request_counts_by_hour_scoped(two_clients: tuple[LLMClient, LLMClient]) -> None:
    client, _ = two_clients
    buckets = await analytics.request_counts(by="hour", session_key="s1", until=at(27))
    assert len(buckets) == 26  # 01:00 through 02:00 the next day
    assert (buckets[0].start, buckets[0].count) == (at(1), 1)
    assert sum(b.count or 0 for b in buckets) == 3
    assert sum(b.count == 0 for b in buckets) == 23
    mine = await analytics.request_counts(by="hour", llm_client=client, since=at(0), until=at(4))
    assert [b.count for b in mine] == [0, 1, 1, 1]


async def test_request_counts_in_a_time_zone(client: LLMClient) -> None:
    # Europe/Paris moves to summer time on 2026-03-29: that day lasts 23 hours.
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    await put(client, "s", dt.datetime(2026, 3, 28, 23, 30, tzinfo=UTC))  # 29th, 00:30 local
    await put(client, "s", dt.datetime(2026, 3, 29, 21, 59, tzinfo=UTC))  # 29th, 23:59 local
    await put(client, "s", dt.datetime(2026, 3, 29, 22, 0, tzinfo=UTC))  # 30th, 00:00 local
    buckets = await analytics.request_counts(
        tz="Europe/Paris",
        since=dt.datetime(2026, 3, 28, tzinfo=paris),
        until=dt.datetime(2026, 3, 31, tzinfo=paris),
    )
    assert [(b.start.isoformat(), b.count) for b in buckets] == [
        ("2026-03-28T00:00:00+01:00", 0),
        ("2026-03-29T00:00:00+01:00", 2),
        ("2026-03-30T00:00:00+02:00", 1),
    ]
    assert all(b.start.tzinfo == paris for b in buckets)
    # A half-hour zone: Kolkata's hours start at :30 UTC.
    hours = await analytics.request_counts(by="hour", tz="Asia/Kolkata")
    assert hours[0].start.astimezone(UTC).minute == 30
    assert sum(b.count or 0 for b in hours) == 3


async def test_request_counts_grouped_by_model(
    two_clients: tuple[LLMClient, LLMClient],
) -> None:
    buckets = await analytics.request_counts(group_by="model", since=DAY, until=at(48))
    table = {(b.start, b.group): b.count for b in buckets}
    assert table == {
        (DAY, "gpt-4o"): 3,
        (DAY, "mini"): 1,
        (DAY, None): 2,
        (DAY + dt.timedelta(days=1), "gpt-4o"): 0,
        (DAY + dt.timedelta(days=1), "mini"): 1,
        (DAY + dt.timedelta(days=1), None): 0,
    }


async def test_request_counts_empty_window_lists_zero_buckets(llmreq_db: object) -> None:
    buckets = await analytics.request_counts(since=DAY, until=at(48))
    assert [b.count for b in buckets] == [0, 0]
    assert await analytics.request_counts() == []


async def test_request_counts_reach_the_last_day_and_hour_a_date_holds(
    llmreq_db: object,
) -> None:
    days = await analytics.request_counts(since=LAST_HOUR - dt.timedelta(days=2), until=LAST_HOUR)
    assert [b.start.date() for b in days] == [
        dt.date(9999, 12, 29),
        dt.date(9999, 12, 30),
        dt.date(9999, 12, 31),
    ]
    hours = await analytics.request_counts(
        by="hour",
        since=LAST_HOUR - dt.timedelta(hours=2),
        until=dt.datetime.max.replace(tzinfo=dt.timezone.utc),
    )
    assert [b.start.hour for b in hours] == [21, 22, 23]


# -- client_usage ----------------------------------------------------------------


async def test_client_usage(two_clients: tuple[LLMClient, LLMClient]) -> None:
    client, other = two_clients
    gone = ObjectId()
    await put(gone, "s9", at(7))
    usage = await analytics.client_usage()
    assert usage == [
        ClientUsage(ObjectId(client.id), "support-bot", 4, 2, at(1), at(26)),
        ClientUsage(ObjectId(other.id), "sales-bot", 3, 1, at(4), at(6)),
        ClientUsage(gone, None, 1, 1, at(7), at(7)),
    ]
    windowed = await analytics.client_usage(since=at(3), until=at(6))
    assert [(u.name, u.requests, u.sessions) for u in windowed] == [
        ("sales-bot", 2, 1),
        ("support-bot", 1, 1),
    ]


# -- bad input -------------------------------------------------------------------

NAIVE = dt.datetime(2026, 1, 1)
FIRST_HOUR = dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone.utc)
LAST_HOUR = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone.utc)

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("session_summaries", {"since": NAIVE}, "naive"),
    ("session_summaries", {"until": NAIVE}, "naive"),
    ("session_summaries", {"since": "2026-01-01"}, "timezone-aware datetime"),
    ("session_summaries", {"since": at(2), "until": at(1)}, "must be before"),
    ("session_summaries", {"since": at(1), "until": at(1)}, "must be before"),
    ("session_summaries", {"limit": 0}, "between 1 and"),
    ("session_summaries", {"limit": 10_001}, "between 1 and"),
    ("session_summaries", {"limit": True}, "integer"),
    ("session_summaries", {"llm_client": "abc"}, "hex"),
    ("session_summaries", {"llm_client": {"$ne": None}}, "must be an LLMClient"),
    ("session_summaries", {"group_by": "$where"}, "may not contain"),
    ("session_summaries", {"group_by": "a..b"}, "no empty segment"),
    ("session_summaries", {"group_by": ""}, "1 to"),
    ("session_summaries", {"group_by": 5}, "string path"),
    ("top_sessions", {"n": 0}, "between 1 and"),
    ("top_sessions", {"n": -3}, "between 1 and"),
    ("top_sessions", {"since": NAIVE}, "naive"),
    ("request_counts", {"by": "week"}, "'day' or 'hour'"),
    ("request_counts", {"tz": "Mars/Olympus"}, "unknown time zone"),
    ("request_counts", {"tz": "../../etc/passwd"}, "unknown time zone"),
    ("request_counts", {"tz": ""}, "IANA"),
    ("request_counts", {"tz": 3}, "IANA"),
    ("request_counts", {"session_key": 5}, "session_key must be a string"),
    ("request_counts", {"session_key": {"$gt": ""}}, "session_key must be a string"),
    (
        "request_counts",
        {"since": at(0), "until": at(0) + dt.timedelta(days=5000), "by": "hour"},
        "100,000",
    ),
    ("request_counts", {"until": NAIVE}, "naive"),
    # Local days before year 1 or after 9999, which no datetime holds.
    (
        "request_counts",
        {"since": FIRST_HOUR, "until": FIRST_HOUR + dt.timedelta(days=3), "tz": "America/New_York"},
        "outside years 1 to 9999",
    ),
    (
        "request_counts",
        {"since": LAST_HOUR - dt.timedelta(days=3), "until": LAST_HOUR, "tz": "Pacific/Kiritimati"},
        "outside years 1 to 9999",
    ),
    ("client_usage", {"since": NAIVE}, "naive"),
    ("client_usage", {"since": at(5), "until": at(4)}, "must be before"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), BAD_CALLS)
async def test_bad_input_is_refused_before_any_query(
    llmreq_engine: object, name: str, kwargs: dict[str, Any], match: str
) -> None:
    # No database is initialised for this test: any query would fail with
    # another error, so a clean InvalidInput shows nothing was sent.
    with pytest.raises(InvalidInput, match=match):
        await getattr(analytics, name)(**kwargs)


def test_public_names() -> None:
    assert set(analytics.__all__) == {
        "ClientUsage",
        "CountBucket",
        "Distribution",
        "LatencyStats",
        "Price",
        "SessionSummary",
        "client_usage",
        "latency",
        "request_counts",
        "session_page",
        "session_summaries",
        "top_sessions",
    }
