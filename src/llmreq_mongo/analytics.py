"""Read-only reports over the request history: sessions, time buckets, clients.

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
"""

from ._reports.analytics import (
    ClientUsage,
    CountBucket,
    SessionSummary,
    client_usage,
    request_counts,
    session_summaries,
    top_sessions,
)
from ._reports.session_pages import session_page

__all__ = [
    "ClientUsage",
    "CountBucket",
    "SessionSummary",
    "client_usage",
    "request_counts",
    "session_page",
    "session_summaries",
    "top_sessions",
]
