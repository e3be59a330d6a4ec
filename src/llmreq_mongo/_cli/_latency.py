"""``llmreq latency``: how long calls took, per model or per client.

Prints, for each model (or client), how many calls had a response and the
p50, p95, p99 and maximum of their latency, then the same for the time to
first byte of the streamed ones. Percentiles are nearest-rank: each is a
latency some call really had (see :func:`llmreq_mongo.analytics.latency`).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from llmreq_mongo import analytics
from llmreq_mongo._connection import Handle

from ._answers import millis
from ._app import JsonFlag, app, reported, run, settings_of
from ._durations import format_time
from ._inspect import ClientOption, UntilOption, client_or_none, window
from ._render import print_json, table

__all__ = ["By", "latency"]

#: The default window: recent enough to say how things are going now.
LATENCY_SPAN = "7d"


class By(str, Enum):
    """What ``latency`` groups calls by."""

    model = "model"
    client = "client"


def _timing(d: analytics.Distribution) -> dict[str, Any]:
    return {"count": d.count, "p50": d.p50, "p95": d.p95, "p99": d.p99, "max": d.max}


def _label(row: analytics.LatencyStats) -> str:
    if row.name is not None:
        return row.name
    return "(no model)" if row.by == "model" else f"(deleted {row.key})"


@app.command()
def latency(
    ctx: typer.Context,
    by: Annotated[
        By, typer.Option(help="Group calls by the model that answered, or by client.")
    ] = (By.model),
    client: ClientOption = None,
    since: Annotated[
        str | None,
        typer.Option(help=f"Calls from this time (default: {LATENCY_SPAN} ago)."),
    ] = None,
    until: UntilOption = None,
    json: JsonFlag = False,
) -> None:
    """Latency and time to first byte per model or client: calls, p50, p95, p99, max."""
    settings = settings_of(ctx)
    with reported(settings):
        start, end = window(LATENCY_SPAN if since is None else since, until)

    async def work(handle: Handle) -> list[analytics.LatencyStats]:
        found = await client_or_none(client)
        return await analytics.latency(by=by.value, since=start, until=end, llm_client=found)

    rows = run(settings, work)
    if settings.wants_json(json):
        print_json(
            [
                {
                    by.value: r.name,
                    **({"llm_client_id": str(r.key)} if by is By.client else {}),
                    "latency_ms": _timing(r.latency_ms),
                    "ttft_ms": _timing(r.ttft_ms),
                }
                for r in rows
            ]
        )
        return
    if not rows:
        settings.console.print("no calls with a response in this window", markup=False)
        return
    span = f"since {format_time(start)}" if since and start else f"in the last {LATENCY_SPAN}"
    title = f"latency per {by.value}, calls {span}" + (f" until {format_time(end)}" if end else "")
    if client:
        title += f", client {client}"
    settings.console.print(
        table(
            title + " (nearest-rank percentiles)",
            [by.value, "calls", "p50", "p95", "p99", "max", "streamed", "ttft p50", "ttft p99"],
            [
                [
                    _label(r),
                    r.latency_ms.count,
                    millis(r.latency_ms.p50),
                    millis(r.latency_ms.p95),
                    millis(r.latency_ms.p99),
                    millis(r.latency_ms.max),
                    r.ttft_ms.count,
                    millis(r.ttft_ms.p50) if r.ttft_ms.count else None,
                    millis(r.ttft_ms.p99) if r.ttft_ms.count else None,
                ]
                for r in rows
            ],
            right=8,
        ),
        markup=False,
    )
