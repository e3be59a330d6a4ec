"""``llmreq aggregate``: run the session rollups over a time window."""

from __future__ import annotations

from typing import Annotated

import typer

from llmreq_mongo._connection import Handle
from llmreq_mongo._reports.rollups import RollupResult, aggregate_sessions
from llmreq_mongo.errors import InvalidInput

from ._app import JsonFlag, app, reported, run, settings_of
from ._durations import format_time
from ._inspect import window
from ._names import client_by_name
from ._render import plural, print_json

__all__ = ["aggregate"]


@app.command()
def aggregate(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="The window's start: ISO 8601, a date, or 1d ago.")],
    until: Annotated[
        str, typer.Option(help="The window's end (excluded), same forms as --since.")
    ] = "now",
    client: Annotated[str | None, typer.Option(help="Only this client (by name).")] = None,
    json: JsonFlag = False,
) -> None:
    """Write one rollup record per (client, session) of [since, until) (idempotent)."""
    settings = settings_of(ctx)
    with reported(settings):
        start, end = window(since, until)
        if start is None or end is None:  # both options are required by Typer
            raise InvalidInput("aggregate needs --since and --until")

    async def work(handle: Handle) -> RollupResult:
        found = None if client is None else await client_by_name(client)
        return await aggregate_sessions(since=start, until=end, llm_client=found)

    result = run(settings, work)
    if settings.wants_json(json):
        print_json(
            {
                "since": format_time(start),
                "until": format_time(end),
                "sessions": result.sessions,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
            }
        )
        return
    settings.console.print(
        f"rolled up {plural(result.sessions, 'session')} of {format_time(start)} to "
        f"{format_time(end)}: "
        f"{result.created:,} created, {result.updated:,} updated, {result.unchanged:,} unchanged",
        markup=False,
    )
