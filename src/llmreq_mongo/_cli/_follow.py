"""``llmreq tail``: follow new requests live through a change stream.

Change streams need a replica set (MongoDB's own, Atlas, or the embedded
engine). The embedded engine's store belongs to one process at a time, so to
watch what another program records, point both at the same server with
``--uri``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from bson import ObjectId

from llmreq_mongo._checks import check_session_key
from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import LLMClientRequest
from llmreq_mongo._queries import decode_payload
from llmreq_mongo._reports.shown import written_out
from llmreq_mongo.errors import storage_errors

from ._app import app, reported, run, settings_of
from ._durations import format_time
from ._export import export_line
from ._names import client_by_name, client_names, name_of
from ._render import one_line

__all__ = ["tail"]


@app.command()
def tail(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Option(help="Only this session's requests.")] = None,
    client: Annotated[str | None, typer.Option(help="Only this client's requests.")] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print each request as an export line (JSON Lines).")
    ] = False,
) -> None:
    """Print each new request as it is recorded, until Ctrl-C."""
    settings = settings_of(ctx)
    as_json = settings.wants_json(json)
    with reported(settings):
        key = check_session_key(session, nullable=False) if session is not None else None

    async def work(handle: Handle) -> None:
        names = await client_names()
        match: dict[str, Any] = {"operationType": {"$eq": "insert"}}
        if key is not None:
            match["fullDocument.session_key"] = {"$eq": key}
        if client is not None:
            match["fullDocument.llm_client_id"] = {"$eq": (await client_by_name(client)).id}
        coll = LLMClientRequest.get_pymongo_collection()
        with storage_errors("follow new requests (change streams need a replica set)"):
            stream = await coll.watch([{"$match": match}])
            async with stream:
                what = " and ".join(
                    part
                    for part in (
                        f"session {key}" if key is not None else "",
                        f"client {client}" if client is not None else "",
                    )
                    if part
                )
                settings.err.print(
                    f"following new requests{' of ' + what if what else ''} (Ctrl-C to stop)",
                    markup=False,
                )
                looked_up: set[ObjectId] = set()
                async for change in stream:
                    doc = change["fullDocument"]
                    client_id = doc.get("llm_client_id")
                    # A client created after we started is looked up once (a
                    # deleted client's requests must not cost a query each).
                    if (
                        isinstance(client_id, ObjectId)
                        and client_id not in names
                        and client_id not in looked_up
                    ):
                        looked_up.add(client_id)
                        names = await client_names()
                    sys.stdout.write(_line(doc, name_of(names, client_id), as_json) + "\n")
                    sys.stdout.flush()

    run(settings, work)


def _line(doc: dict[str, Any], client_name: str, as_json: bool) -> str:
    if as_json:
        return export_line(doc, client_name)
    session = doc.get("session_key") or "-"
    summary = one_line(decode_payload(doc.get("request")), width=100)
    # Written to stdout as it is: what was recorded must not act on the terminal.
    shown = written_out(f"{client_name}  {session}  {summary}")
    return f"{format_time(doc['created_at'])}  {shown}"
