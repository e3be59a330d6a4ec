"""Read-only reports over the request history: sessions, time buckets, clients, latency.

Every function is async, checks its arguments before any query runs, and
counts raw requests only: the rollup records ``aggregate_sessions`` writes
(``is_aggregation=True``) never count. Windows are ``[since, until)`` and take
timezone-aware datetimes only (naive ones are refused, as in lookups).

Example::

    from llmreq_mongo import analytics

    week = dict(since=datetime(2026, 3, 2, tzinfo=timezone.utc),
                until=datetime(2026, 3, 9, tzinfo=timezone.utc))
    for bucket in await analytics.request_counts(by="day", tz="Europe/Paris", **week):
        print(bucket.start.date(), bucket.count)
    busiest = await analytics.top_sessions(n=5, **week)

Reports also read what came back: sessions and clients carry their token
sums, errors and, with a price table, their cost::

    prices = {"gpt-4o": analytics.Price(input_per_mtok=2.5, output_per_mtok=10.0)}
    for usage in await analytics.client_usage(prices=prices, **week):
        print(usage.name, usage.input_tokens, usage.output_tokens, usage.errors, usage.cost)
    for row in await analytics.latency(by="model", **week):
        print(row.name, row.latency_ms.p50, row.latency_ms.p99, row.ttft_ms.p50)

A token sum over calls that reported no usage is None, never 0.
"""

from ._reports.analytics import (
    ClientUsage,
    SessionSummary,
    client_usage,
    session_summaries,
    top_sessions,
)
from ._reports.buckets import CountBucket, request_counts
from ._reports.latency import Distribution, LatencyStats, latency
from ._reports.prices import Price
from ._reports.session_pages import session_page

__all__ = [
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
]
