"""Read commands: ``clients``, ``sessions`` and ``show`` (``stats`` is in ``_stats``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from bson import ObjectId

from llmreq_mongo._checks import check_session_key
from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import scoped_match
from llmreq_mongo._reports.analytics import client_usage
from llmreq_mongo._time import to_utc_ms
from llmreq_mongo.errors import InvalidInput, storage_errors

from ._app import JsonFlag, app, reported, run, settings_of
from ._durations import format_time, parse_time
from ._names import client_by_name, client_names, name_of
from ._render import (
    print_json,
    print_sessions,
    table,
)

__all__ = ["ClientOption", "UntilOption", "client_or_none", "clients", "sessions", "show", "window"]

SinceOption = Annotated[
    str | None, typer.Option(help="From this time: ISO 8601, a date (UTC), or 7d for 7 days ago.")
]
UntilOption = Annotated[str | None, typer.Option(help="Before this time (same forms as --since).")]
ClientOption = Annotated[str | None, typer.Option(help="Only this client (by name).")]


def window(since: str | None, until: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse ``--since``/``--until``; the first must come before the second."""
    start = parse_time(since, what="--since") if since is not None else None
    end = parse_time(until, what="--until") if until is not None else None
    if start is not None and end is not None and start >= end:
        raise InvalidInput(
            f"--since ({format_time(start)}) must be before --until ({format_time(end)})"
        )
    return start, end


async def client_or_none(name: str | None) -> LLMClient | None:
    return None if name is None else await client_by_name(name)


# -- clients --------------------------------------------------------------------


#: The default windows of the read commands: long enough to show what is
#: going on, short enough that the ``created_at`` index bounds the work
#: (a report over all time reads every record of the store).
CLIENTS_SPAN = "30d"
SESSIONS_SPAN = "7d"


@app.command()
def clients(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help=f"Count requests from this time (default: {CLIENTS_SPAN} ago)."),
    ] = None,
    until: UntilOption = None,
    json: JsonFlag = False,
) -> None:
    """List every LLM client with its requests, sessions, first and last request in a window."""
    settings = settings_of(ctx)
    with reported(settings):
        start, end = window(CLIENTS_SPAN if since is None else since, until)

    async def work(handle: Handle) -> list[dict[str, Any]]:
        usage = {u.llm_client_id: u for u in await client_usage(since=start, until=end)}
        rows = []
        async for client in LLMClient.objects.order_by("name"):
            used = usage.get(ObjectId(client.id))
            rows.append(
                {
                    "id": str(client.id),
                    "name": client.name,
                    "description": client.description,
                    "requests": used.requests if used else 0,
                    "sessions": used.sessions if used else 0,
                    "first_at": used.first_at if used else None,
                    "last_at": used.last_at if used else None,
                    "input_tokens": used.input_tokens if used else None,
                    "output_tokens": used.output_tokens if used else None,
                    "errors": used.errors if used else 0,
                    "created_at": client.created_at,
                }
            )
        return rows

    rows = run(settings, work)
    if settings.wants_json(json):
        print_json(rows)
        return
    if not rows:
        settings.console.print("no LLM clients yet (`llmreq demo` records some)", markup=False)
        return
    span = f"since {format_time(start)}" if since and start else f"in the last {CLIENTS_SPAN}"
    settings.console.print(
        table(
            f"requests {span}" + (f" until {format_time(end)}" if end else "") + " (--since)",
            ["client", "description", "requests", "sessions", "first (UTC)", "last (UTC)"],
            [
                [
                    r["name"],
                    r["description"],
                    r["requests"],
                    r["sessions"],
                    r["first_at"],
                    r["last_at"],
                ]
                for r in rows
            ],
            right=4,
            wrap=("description",),
        )
    )


# -- sessions -------------------------------------------------------------------


@app.command()
def sessions(
    ctx: typer.Context,
    client: ClientOption = None,
    since: Annotated[
        str | None,
        typer.Option(help=f"Requests from this time (default: {SESSIONS_SPAN} ago)."),
    ] = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 20,
    json: JsonFlag = False,
) -> None:
    """List sessions, most recently active first (raw requests only, no rollups)."""
    settings = settings_of(ctx)
    with reported(settings):
        start, end = window(SESSIONS_SPAN if since is None else since, until)

    async def work(handle: Handle) -> tuple[list[dict[str, Any]], int, dict[Any, str]]:
        found = await client_or_none(client)
        summaries, total = await _recent_sessions(found, start, end, limit)
        return summaries, total, await client_names()

    summaries, total, names = run(settings, work)
    rows = [
        {
            "session_key": s["_id"]["s"],
            "llm_client": name_of(names, s["_id"]["c"]),
            "llm_client_id": str(s["_id"]["c"]),
            "requests": int(s["requests"]),
            "first_at": to_utc_ms(s["first_at"]),
            "last_at": to_utc_ms(s["last_at"]),
        }
        for s in summaries
    ]
    if settings.wants_json(json):
        print_json(rows)
        return
    print_sessions(settings.console, rows)
    if total > len(rows):
        settings.console.print(f"showing {len(rows):,} of {total:,} (--limit)", markup=False)


async def _recent_sessions(
    found: LLMClient | None, start: dt.datetime | None, end: dt.datetime | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The ``limit`` most recently active sessions of the window, and how many it holds.

    One pass: the window's sessions are grouped on the server (the first
    ``$match`` is bounded by the ``created_at`` or client index), and the
    groups, one small row per session, are counted here while the first
    ``limit`` are kept, so telling "showing 20 of N" costs no second pass.
    """
    pipeline: list[dict[str, Any]] = [
        *scoped_match(
            client_id=None if found is None else ObjectId(found.id),
            since=start,
            until=end,
            extra={"session_key": {"$ne": None}},
        ),
        {
            "$group": {
                "_id": {"s": "$session_key", "c": "$llm_client_id"},
                "requests": {"$sum": 1},
                "first_at": {"$min": "$created_at"},
                "last_at": {"$max": "$created_at"},
            }
        },
        {"$sort": {"last_at": -1, "_id": 1}},
    ]
    coll = LLMClientRequest.get_pymongo_collection()
    kept: list[dict[str, Any]] = []
    total = 0
    with storage_errors("list the sessions"):
        async for row in await coll.aggregate(pipeline):
            total += 1
            if len(kept) < limit:
                kept.append(row)
    return kept, total


# -- show -----------------------------------------------------------------------


@app.command()
def show(
    ctx: typer.Context,
    session_key: Annotated[str, typer.Argument(help="The session to show.")],
    client: ClientOption = None,
    json: JsonFlag = False,
) -> None:
    """Show a session's requests as a timeline, each response under its request."""
    # The timeline's rendering (the conversation and the responses) is for
    # this command alone: imported when it runs.
    from ._timeline import Timeline

    settings = settings_of(ctx)
    as_json = settings.wants_json(json)
    with reported(settings):
        key = check_session_key(session_key, nullable=False)

    async def work(handle: Handle) -> int:
        found = await client_or_none(client)
        names = await client_names()
        history = LLMClientRequest.objects.for_session(key, llm_client=found)
        timeline = Timeline(settings, names, as_json)
        async for req in history.iterator(batch_size=500):
            timeline.add(req)
        timeline.close()
        if not timeline.count:
            raise LLMClientRequest.DoesNotExist(
                f"no requests in session {key!r}"
                + (f" of client {client!r}" if client else "")
                + "; `llmreq sessions` lists the sessions"
            )
        return timeline.count

    run(settings, work)
