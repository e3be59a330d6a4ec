"""``llmreq retention`` (a TTL on ``created_at``) and ``llmreq prune`` (a one-off clean-up).

Retention reuses the ``created_at`` index the time-window queries already
need (``llmreq_created_at``): ``set`` turns it into a TTL index, or changes
its expiry, in place with ``collMod`` (MongoDB 5.1 and newer), so no second
index on the same key is ever built. MongoDB cannot take the TTL off an index
in place, so ``off`` first builds a stand-in index on ``(created_at, _id)``
that serves the same queries, rebuilds ``llmreq_created_at`` without a TTL,
then drops the stand-in: at no moment is ``created_at`` left unindexed.

MongoDB's TTL monitor deletes expired records about once a minute, in the
background; ``prune`` deletes old records now, in batches.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pymongo import IndexModel

from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import LLMClientRequest
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import InvalidInput, storage_errors

from ._app import JsonFlag, Settings, app, reported, run, settings_of
from ._durations import format_duration, format_time, parse_duration
from ._names import client_names, name_of
from ._render import plural, print_json, table

__all__ = ["prune", "retention_app"]

INDEX_NAME = "llmreq_created_at"
_STANDIN = "llmreq_created_at_standin"
_KEY = [("created_at", 1)]
#: The largest expiry MongoDB accepts (seconds).
_MAX_TTL = 2_147_483_647
_PRUNE_BATCH = 1000

retention_app = typer.Typer(
    help="Keep requests for a fixed time (a TTL index on created_at).", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")


async def _created_at_index() -> tuple[str | None, dict[str, Any]]:
    """The index on exactly ``{created_at: 1}``, whatever its name."""
    coll = LLMClientRequest.get_pymongo_collection()
    with storage_errors("list the indexes of llm_client_requests"):
        info = await coll.index_information()
    for name, spec in info.items():
        if list(spec.get("key", [])) == _KEY:
            return name, spec
    return None, {}


async def current_ttl() -> int | None:
    """The expiry of ``created_at`` in seconds, or None when records are kept forever."""
    _, spec = await _created_at_index()
    ttl = spec.get("expireAfterSeconds")
    return None if ttl is None else int(ttl)


def _describe(ttl: int | None) -> dict[str, Any]:
    if ttl is None:
        return {"retention": None, "expire_after_seconds": None}
    return {"retention": format_duration(ttl), "expire_after_seconds": ttl}


async def set_retention(seconds: int) -> tuple[int | None, int]:
    """Make records expire ``seconds`` after ``created_at``; returns (old, new)."""
    coll = LLMClientRequest.get_pymongo_collection()
    name, spec = await _created_at_index()
    old = spec.get("expireAfterSeconds")
    with storage_errors("set the retention"):
        if name is None:
            await coll.create_index(_KEY, name=INDEX_NAME, expireAfterSeconds=seconds)
        elif old != seconds:
            await coll.database.command(
                "collMod",
                coll.name,
                index={"keyPattern": {"created_at": 1}, "expireAfterSeconds": seconds},
            )
    return (None if old is None else int(old)), seconds


async def retention_off() -> int | None:
    """Keep records forever again; returns the expiry that was removed."""
    coll = LLMClientRequest.get_pymongo_collection()
    name, spec = await _created_at_index()
    old = spec.get("expireAfterSeconds")
    with storage_errors("turn the retention off"):
        if name is not None and old is not None:
            await coll.create_indexes([IndexModel([("created_at", 1), ("_id", 1)], name=_STANDIN)])
            await coll.drop_index(name)
            await coll.create_indexes([IndexModel(_KEY, name=INDEX_NAME)])
        # Also finishes an earlier `off` that was interrupted half-way.
        if name is None:
            await coll.create_indexes([IndexModel(_KEY, name=INDEX_NAME)])
        if _STANDIN in await coll.index_information():
            await coll.drop_index(_STANDIN)
    return None if old is None else int(old)


def _print(settings: Settings, json_flag: bool, data: Mapping[str, Any], text: str) -> None:
    if settings.wants_json(json_flag):
        print_json(dict(data))
    else:
        settings.console.print(text, markup=False)


@retention_app.command("show")
def retention_show(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Show how long requests are kept."""
    settings = settings_of(ctx)
    ttl = run(settings, lambda handle: current_ttl())
    text = (
        "retention: off (requests are kept until deleted)"
        if ttl is None
        else f"retention: {format_duration(ttl)} (requests expire {ttl:,} s after created_at)"
    )
    _print(settings, json, _describe(ttl), text)


async def _older_than(cutoff: dt.datetime) -> int:
    """How many records were created before ``cutoff`` (a range count on the index)."""
    coll = LLMClientRequest.get_pymongo_collection()
    with storage_errors("count the requests the retention would delete"):
        return int(await coll.count_documents({"created_at": {"$lt": cutoff}}))


def _shortens(old: int | None, seconds: int) -> bool:
    """Whether a retention of ``seconds`` expires records the current one keeps."""
    return old is None or seconds < old


def _confirm_retention(settings: Settings, doomed: int, seconds: int) -> bool:
    """Ask before a retention that deletes records at once (on stderr, like prune)."""
    answer = typer.confirm(
        f"a retention of {format_duration(seconds)} makes MongoDB delete "
        f"{plural(doomed, 'existing request')} within about a minute; set it?",
        default=False,
        err=True,
    )
    if not answer:
        settings.err.print("retention unchanged", markup=False)
    return answer


async def _checked_retention(
    settings: Settings, seconds: int, *, ask: bool
) -> tuple[int | None, int]:
    """Set the retention, first confirming it when it would delete records now.

    The TTL monitor deletes every record older than the retention within
    about a minute, so a short one (``1s``, a typo for ``1d``) empties the
    history as surely as ``prune``; like ``prune``, it then asks on a
    terminal and needs ``--yes`` without one.
    """
    if ask and _shortens(await current_ttl(), seconds):
        doomed = await _older_than(now_ms() - dt.timedelta(seconds=seconds))
        if doomed and not sys.stdin.isatty():
            raise InvalidInput(
                f"a retention of {format_duration(seconds)} would delete "
                f"{plural(doomed, 'existing request')} and there is no terminal to confirm "
                "on; pass --yes to set it"
            )
        if doomed and not await asyncio.to_thread(_confirm_retention, settings, doomed, seconds):
            raise typer.Exit(1)
    return await set_retention(seconds)


@retention_app.command("set")
def retention_set(
    ctx: typer.Context,
    duration: Annotated[str, typer.Argument(help="How long to keep requests: 90d, 12h, 2w, ...")],
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Set it without asking even if it deletes existing requests "
            "(needed without a terminal).",
        ),
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Delete requests automatically once they are older than DURATION.

    When that would delete existing requests at once, it asks first on a
    terminal; without one it refuses unless ``--yes`` is given.
    """
    settings = settings_of(ctx)
    with reported(settings):
        seconds = int(parse_duration(duration, what="retention").total_seconds())
        if seconds > _MAX_TTL:
            raise InvalidInput(
                f"retention {duration!r} is longer than MongoDB allows (about 68 years)"
            )
    old, new = run(settings, lambda handle: _checked_retention(settings, seconds, ask=not yes))
    was = "off" if old is None else format_duration(old)
    verb = "unchanged" if old == new else f"changed from {was}"
    _print(
        settings,
        json,
        {**_describe(new), "previous": _describe(old)["retention"]},
        f"retention: {format_duration(new)} ({verb}); "
        "MongoDB deletes expired requests about once a minute",
    )


@retention_app.command("off")
def retention_off_command(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Keep requests until deleted (the created_at index stays)."""
    settings = settings_of(ctx)
    old = run(settings, lambda handle: retention_off())
    was = "already off" if old is None else f"was {format_duration(old)}"
    _print(
        settings,
        json,
        {**_describe(None), "previous": _describe(old)["retention"]},
        f"retention: off ({was})",
    )


async def _old_by_client(cutoff: dt.datetime) -> list[tuple[Any, int]]:
    coll = LLMClientRequest.get_pymongo_collection()
    pipeline: list[dict[str, Any]] = [
        {"$match": {"created_at": {"$lt": cutoff}}},
        {"$group": {"_id": "$llm_client_id", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}},
    ]
    with storage_errors("count the requests to prune"):
        return [(row["_id"], int(row["n"])) async for row in await coll.aggregate(pipeline)]


@dataclass
class _Pruned:
    """How far a prune got, for the line an interrupt prints."""

    found: int | None = None
    deleted: int = 0

    def __str__(self) -> str:
        if self.found is None:
            return "nothing deleted yet"
        return f"{self.deleted:,} of {plural(self.found, 'request')} deleted"


async def _delete_older(
    cutoff: dt.datetime, batch_size: int, pruned: _Pruned | None = None
) -> tuple[int, int]:
    """Delete records created before ``cutoff``, oldest first, a batch at a time.

    Each batch ends at the ``created_at`` of the batch's last record (found by
    walking the ``created_at`` index), so no list of ids is ever sent; records
    sharing that millisecond go in the same batch. ``pruned`` counts each
    batch as MongoDB acknowledges it.
    """
    coll = LLMClientRequest.get_pymongo_collection()
    deleted = batches = 0
    progress = pruned if pruned is not None else _Pruned()
    with storage_errors("prune old requests"):
        while True:
            edge = await coll.find(
                {"created_at": {"$lt": cutoff}},
                projection={"created_at": 1, "_id": 0},
                sort=[("created_at", 1)],
                skip=batch_size - 1,
                limit=1,
            ).to_list(1)
            window: dict[str, Any] = {"$lt": cutoff}
            if edge:
                window["$lte"] = edge[0]["created_at"]
            result = await coll.delete_many({"created_at": window})
            deleted += int(result.deleted_count)
            progress.deleted = deleted
            batches += 1 if result.deleted_count else 0
            if not edge:
                return deleted, batches


def _confirm(settings: Settings, by_client: list[tuple[str, int]], cutoff: dt.datetime) -> bool:
    """Show what would go and ask (on stderr, so stdout stays the result)."""
    err = settings.err
    err.print(table(None, ["client", "requests"], by_client, right=1))
    found = sum(n for _, n in by_client)
    answer = typer.confirm(
        f"delete {plural(found, 'request')} older than {format_time(cutoff)}?",
        default=False,
        err=True,
    )
    if not answer:
        err.print("nothing deleted", markup=False)
    return answer


@app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option(help="Delete requests older than this: 90d, 12h, ...")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Requests deleted per batch.")
    ] = _PRUNE_BATCH,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking (needed without a terminal).")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Delete requests older than a duration now, in batches, and show what went.

    On a terminal it shows what would go and asks first; without one (a
    script, a pipe) it refuses unless ``--yes`` is given.
    """
    settings = settings_of(ctx)
    ask = not (dry_run or yes)
    with reported(settings):
        age = parse_duration(older_than, what="--older-than")
        if ask and not sys.stdin.isatty():
            raise InvalidInput(
                "prune deletes requests and there is no terminal to confirm on; "
                "pass --yes to delete, or --dry-run to see what would go"
            )
    cutoff = now_ms() - age
    pruned = _Pruned()

    async def work(handle: Handle) -> tuple[list[tuple[str, int]], int, int]:
        names = await client_names()
        by_client = [(name_of(names, cid), n) for cid, n in await _old_by_client(cutoff)]
        if dry_run or not by_client:
            return by_client, 0, 0
        if ask and not await asyncio.to_thread(_confirm, settings, by_client, cutoff):
            raise typer.Exit(1)
        pruned.found = sum(n for _, n in by_client)
        deleted, batches = await _delete_older(cutoff, batch_size, pruned)
        return by_client, deleted, batches

    by_client, deleted, batches = run(settings, work, done=pruned.__str__)
    found = sum(n for _, n in by_client)
    if settings.wants_json(json):
        print_json(
            {
                "cutoff": format_time(cutoff),
                "dry_run": dry_run,
                "matched": found,
                "deleted": deleted,
                "by_client": [{"llm_client": name, "requests": n} for name, n in by_client],
            }
        )
        return
    console = settings.console
    when = format_time(cutoff)
    if not by_client:
        console.print(f"nothing to prune: no request is older than {when}", markup=False)
        return
    console.print(table(None, ["client", "requests"], by_client, right=1))
    if dry_run:
        console.print(
            f"dry run: {plural(found, 'request')} older than {when} would be deleted",
            markup=False,
        )
    else:
        console.print(
            f"deleted {plural(deleted, 'request')} older than {when} "
            f"in {plural(batches, 'batch', 'batches')}",
            markup=False,
        )
