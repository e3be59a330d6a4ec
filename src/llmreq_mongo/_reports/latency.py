"""``latency``: how long calls took, per model or per client, as percentiles.

The percentiles are **nearest-rank** percentiles, computed exactly: the
p-th percentile of n values is the value at rank ``ceil(p * n / 100)``
(1-based) in ascending order, so it is always one of the measured values
(p50 of 10, 20, 30, 40 is 20; p99 of 100 values is the 99th smallest).

Why not ``$percentile``: MongoDB has it from 7.0 only, and its
``"approximate"`` method (a t-digest) may return a value that was never
measured and may differ between servers and versions; the embedded engine
accepts it with exact nearest-rank results. One exact method, computed
here, gives the same answer on every server: the server selects the
window's responses through an index, projects the two timings and the
group key, and sorts by the key; this process reads the stream one group at
a time, keeping only that group's timings (8 bytes a call) to sort and
pick ranks from.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bson import ObjectId

from llmreq_mongo._checks import check_choice, check_window, client_ref
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import scoped_match
from llmreq_mongo._types import ClientRef
from llmreq_mongo.errors import storage_errors

from .measures import MODEL

__all__ = ["Distribution", "LatencyStats", "distribution", "latency", "nearest_rank"]

_BY: tuple[Literal["model", "client"], ...] = ("model", "client")


def nearest_rank(ordered: Any, p: int) -> float | None:
    """The nearest-rank ``p``-th percentile (1..100) of ``ordered`` (sorted ascending)."""
    n = len(ordered)
    if not n:
        return None
    rank = max(1, -(-p * n // 100))  # ceil(p * n / 100), in integers
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class Distribution:
    """One timing (milliseconds) over a group of calls.

    Attributes:
        count: how many calls measured it.
        p50: the median (nearest rank); None when ``count`` is 0.
        p95: the 95th percentile (nearest rank).
        p99: the 99th percentile (nearest rank).
        max: the largest value.
    """

    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def distribution(values: Iterable[float]) -> Distribution:
    """The :class:`Distribution` of ``values`` (any order)."""
    ordered = sorted(values)
    return Distribution(
        count=len(ordered),
        p50=nearest_rank(ordered, 50),
        p95=nearest_rank(ordered, 95),
        p99=nearest_rank(ordered, 99),
        max=float(ordered[-1]) if ordered else None,
    )


@dataclass(frozen=True)
class LatencyStats:
    """The timings of one model's or one client's calls.

    Attributes:
        by: ``"model"`` or ``"client"``, as asked.
        key: the model (``response.model``; None for calls whose response
            names no model, such as a call that never reached the provider),
            or the client's id.
        name: the model, or the client's name (None if it was deleted).
        latency_ms: from the request's arrival to the response's last byte,
            over every call with a response (failed calls included).
        ttft_ms: time to the first byte, over the streamed calls that measured it.
    """

    by: Literal["model", "client"]
    key: str | ObjectId | None
    name: str | None
    latency_ms: Distribution
    ttft_ms: Distribution

    @property
    def model(self) -> str | None:
        """The model, for ``by="model"`` (else None)."""
        return self.key if self.by == "model" and isinstance(self.key, str) else None

    @property
    def llm_client_id(self) -> ObjectId | None:
        """The client's id, for ``by="client"`` (else None)."""
        return self.key if isinstance(self.key, ObjectId) else None


def _latency_pipeline(
    *, by: Any, since: Any, until: Any, llm_client: Any
) -> tuple[Literal["model", "client"], list[dict[str, Any]]]:
    group: Literal["model", "client"] = check_choice("by", by, _BY)
    start, end = check_window(since, until)
    client_id = client_ref(llm_client, model=LLMClient)
    pipeline = [
        *scoped_match(
            client_id=client_id,
            since=start,
            until=end,
            extra={"response.latency_ms": {"$type": "number"}},
        ),
        {
            "$project": {
                "_id": 0,
                "k": MODEL if group == "model" else "$llm_client_id",
                "l": "$response.latency_ms",
                "t": "$response.ttft_ms",
            }
        },
        {"$sort": {"k": 1}},
    ]
    return group, pipeline


def _order(row: LatencyStats) -> tuple[int, int, str]:
    return (-row.latency_ms.count, row.key is None, str(row.key))


async def latency(
    *,
    by: Literal["model", "client"] = "model",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    llm_client: ClientRef | None = None,
) -> list[LatencyStats]:
    """Latency and time to first token per model or client: count, p50, p95, p99, max.

    Only raw calls with a response count. Groups come busiest first (ties
    by key, calls with no model last). Percentiles are nearest-rank (see
    the module docstring): each is a latency some call really had.

    Example::

        for row in await analytics.latency(by="model", since=week_ago):
            print(row.name, row.latency_ms.p50, row.latency_ms.p99, row.ttft_ms.p50)

    Args:
        by: ``"model"`` (the model the response names) or ``"client"``.
        since: calls created at or after this instant.
        until: calls created before this instant.
        llm_client: only this client's calls.

    Raises:
        InvalidInput: ``by`` not ``"model"``/``"client"``, a naive datetime,
            ``since >= until``, or a bad client.
    """
    group, pipeline = _latency_pipeline(by=by, since=since, until=until, llm_client=llm_client)
    # The stream is sorted by key: each group's timings are kept only until
    # the next group starts (missing and null keys sort together).
    done: list[tuple[Any, Distribution, Distribution]] = []
    key: Any = None
    latencies: array[float] = array("d")
    ttfts: array[float] = array("d")

    def close_group() -> None:
        if latencies:
            done.append((key, distribution(latencies), distribution(ttfts)))

    with storage_errors("compute the latency report"):
        # A window's sort may outgrow the server's in-memory limit: let it spill
        # (the default from MongoDB 6.0 on, asked for explicitly for older servers).
        cursor = await LLMClientRequest.get_pymongo_collection().aggregate(
            pipeline, allowDiskUse=True
        )
        async for row in cursor:
            if row.get("k") != key or not latencies:
                close_group()
                key, latencies, ttfts = row.get("k"), array("d"), array("d")
            latencies.append(row["l"])
            if isinstance(row.get("t"), (int, float)):
                ttfts.append(row["t"])
        close_group()
    names: dict[Any, str | None] = {}
    if group == "client" and done:
        with storage_errors("read the clients' names"):
            clients = LLMClient.get_pymongo_collection().find(
                {"_id": {"$in": [found for found, _, _ in done]}}, {"name": 1}
            )
            names = {doc["_id"]: doc.get("name") async for doc in clients}
    rows = [
        LatencyStats(
            by=group,
            key=found,
            name=names.get(found) if group == "client" else found,
            latency_ms=timing,
            ttft_ms=first_byte,
        )
        for found, timing, first_byte in done
    ]
    return sorted(rows, key=_order)
