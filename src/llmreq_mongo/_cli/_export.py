"""``llmreq export``: stream requests to JSON Lines or CSV, in constant memory.

The JSON Lines format (one request per line, UTF-8, ``\\n`` after every line,
keys in this order, no spaces)::

    {"id":"<24 hex>","created_at":"2026-05-01T12:00:00.123Z","updated_at":"...Z",
     "llm_client":{"id":"<24 hex>","name":"support-bot"},"session_key":"abc"|null,
     "is_aggregation":false,"request":<the payload, as JSON>,"response":<see below>|null}

Times are UTC with milliseconds (all BSON keeps), ids are the stored
ObjectIds, and the payload is exactly what was recorded (escaped keys decoded).
``response`` is null for a request recorded alone, else an object with every
field of :class:`~llmreq_mongo.LLMResponse`, in its field order: ``status``,
``body`` (the response JSON, escaped keys decoded), ``model``,
``response_id``, ``finish_reasons``, ``usage`` (null, or the six counts of
:class:`~llmreq_mongo.TokenUsage`, each a number or null), ``error``,
``stream``, ``latency_ms``, ``ttft_ms``, ``completed_at`` (a time as above)
and ``truncated``.
Lines come in (``created_at``, ``id``) order, so exporting the same data twice
gives the same bytes; ``llmreq import`` reads the format back with every id and
timestamp kept.

CSV has the columns ``id, created_at, updated_at, llm_client_id,
llm_client_name, session_key, is_aggregation, request`` (the payload as
compact JSON text), then what came back: ``response_status,
response_model, input_tokens, output_tokens, latency_ms, ttft_ms,
response_error`` (each empty when there is no response or the value was not
recorded, so a spreadsheet sums and sorts them as they are), and
``response``: the whole response as compact JSON text, the same object the
JSON Lines ``response`` holds (empty when there is none).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from enum import Enum
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from llmreq_mongo._capture import LLMResponse, plain_response
from llmreq_mongo._checks import check_session_key
from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import LLMClientRequest
from llmreq_mongo._queries import decode_payload
from llmreq_mongo.errors import InvalidInput, storage_errors

from ._app import Settings, app, reported, run, settings_of
from ._durations import format_time, parse_time
from ._names import client_by_name, client_names, name_of
from ._render import dump_json, plural, print_json
from ._target import checked_target, named_errors, open_target
from ._walk import in_time_order, one_window

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["ExportFormat", "export", "export_line", "export_response", "request_filter"]

_BATCH = 1000
_UTC = dt.timezone.utc
CSV_COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "llm_client_id",
    "llm_client_name",
    "session_key",
    "is_aggregation",
    "request",
    "response_status",
    "response_model",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "ttft_ms",
    "response_error",
    "response",
)
_RESPONSE_FIELDS = tuple(LLMResponse.model_fields)


class ExportFormat(str, Enum):
    """The file formats ``export`` writes."""

    jsonl = "jsonl"
    csv = "csv"


def export_line(raw: Mapping[str, Any], client_name: str) -> str:
    """One stored request as a line of the JSON Lines format (without the newline)."""
    record = {
        "id": str(raw["_id"]),
        "created_at": format_time(raw["created_at"]),
        "updated_at": format_time(raw.get("updated_at", raw["created_at"])),
        "llm_client": {"id": str(raw.get("llm_client_id")), "name": client_name},
        "session_key": raw.get("session_key"),
        "is_aggregation": bool(raw.get("is_aggregation", False)),
        "request": decode_payload(raw.get("request")),
        "response": export_response(raw.get("response")),
    }
    return dump_json(record)


def export_response(stored: Any) -> dict[str, Any] | None:
    """A stored response as the export writes it: every field in order, its time as text.

    The fields come in :class:`~llmreq_mongo.LLMResponse`'s order whatever
    the stored order, so the same response always gives the same bytes.
    """
    if not isinstance(stored, Mapping):
        return None
    fields = plain_response(stored)
    completed = fields.get("completed_at")
    if isinstance(completed, dt.datetime):
        fields["completed_at"] = format_time(completed)
    return {name: fields[name] for name in _RESPONSE_FIELDS if name in fields}


def _cell(value: Any) -> str:
    """A CSV cell: empty for None, the number as it is, text as :func:`_text` writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _text(str(value))


#: What a spreadsheet reads, at the start of a cell, as the start of a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """A text cell: a leading ``'`` when a spreadsheet would read it as a formula.

    A session key, a client's name or a payload is whatever a caller sent, and
    the file is opened in a spreadsheet: ``=HYPERLINK(...)`` or
    ``+cmd|...`` would run there. Spreadsheets show a leading ``'`` as
    nothing and take the rest as text (OWASP's advice for CSV). JSON Lines
    keeps every value exactly.
    """
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _response_cells(response: Mapping[str, Any] | None) -> list[str]:
    if response is None:
        return [""] * 8
    usage = response.get("usage") or {}
    return [
        _cell(response.get("status")),
        _cell(response.get("model")),
        _cell(usage.get("input_tokens")),
        _cell(usage.get("output_tokens")),
        _cell(response.get("latency_ms")),
        _cell(response.get("ttft_ms")),
        _cell(response.get("error")),
        _text(dump_json(response)),
    ]


def _csv_row(raw: Mapping[str, Any], client_name: str) -> list[str]:
    key = raw.get("session_key")
    return [
        str(raw["_id"]),
        format_time(raw["created_at"]),
        format_time(raw.get("updated_at", raw["created_at"])),
        str(raw.get("llm_client_id")),
        _text(client_name),
        "" if key is None else _text(str(key)),
        "true" if raw.get("is_aggregation") else "false",
        _text(dump_json(decode_payload(raw.get("request")))),
        *_response_cells(export_response(raw.get("response"))),
    ]


async def request_filter(
    *,
    client: str | None,
    session: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> dict[str, Any]:
    """The MongoDB filter for the common ``--client/--session/--since/--until`` options.

    Built by the manager's lookups, which type-check every value.
    """
    lookups: dict[str, Any] = {}
    if session is not None:
        lookups["session_key"] = check_session_key(session, nullable=False)
    if client is not None:
        lookups["llm_client"] = await client_by_name(client)
    if since is not None:
        lookups["created_at__gte"] = since
    if until is not None:
        lookups["created_at__lt"] = until
    return LLMClientRequest.objects.filter(**lookups).query


def _progress(settings: Settings, total: int | None, what: str) -> Progress:
    # Imported here: the progress bar costs every other command's start.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = settings.err
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )


async def _in_order(
    query: Mapping[str, Any],
    *,
    session: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> AsyncIterator[dict[str, Any]]:
    """The requests to export, in (``created_at``, ``_id``) order, streaming.

    A session is read in one query, bounded by the session index; anything
    else in bounded ``created_at`` windows (``_walk``).
    """
    coll = LLMClientRequest.get_pymongo_collection()
    with storage_errors("read the requests to export"):
        if session is not None:
            async for raw in one_window(coll, query):
                yield raw
            return
        walk = in_time_order(coll, query, since=since, until=until, now=dt.datetime.now(_UTC))
        async for raw in walk:
            yield raw


async def _write(
    out: IO[str],
    fmt: ExportFormat,
    query: Mapping[str, Any],
    settings: Settings,
    *,
    session: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> int:
    names = await client_names()
    total = None
    if settings.err.is_terminal:
        # Only the progress bar needs the total, and counting is a pass of its own.
        with storage_errors("count the requests to export"):
            total = await LLMClientRequest.get_pymongo_collection().count_documents(query)
    writer = csv.writer(out) if fmt is ExportFormat.csv else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    written = 0
    with _progress(settings, total, "exporting") as progress:
        task = progress.add_task("export", total=total)
        async for raw in _in_order(query, session=session, since=since, until=until):
            name = name_of(names, raw.get("llm_client_id"))
            if writer is not None:
                writer.writerow(_csv_row(raw, name))
            else:
                out.write(export_line(raw, name))
                out.write("\n")
            written += 1
            if written % _BATCH == 0:
                progress.update(task, completed=written)
        progress.update(task, completed=written)
    return written


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="File to write; '-' for stdout.", show_default=False),
    ],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="File format.")
    ] = ExportFormat.jsonl,
    client: Annotated[str | None, typer.Option(help="Only this client's requests.")] = None,
    session: Annotated[str | None, typer.Option(help="Only this session's requests.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (ISO 8601, date, or 7d).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export requests as JSON Lines (every field, exactly) or CSV, streaming."""
    settings = settings_of(ctx)
    with reported(settings):
        start = parse_time(since, what="--since") if since is not None else None
        end = parse_time(until, what="--until") if until is not None else None
        if start and end and start >= end:
            raise InvalidInput("--since must be before --until")
        target = checked_target(output)

    def writing_to(out: IO[str]) -> Callable[[Handle], Awaitable[int]]:
        async def work(handle: Handle) -> int:
            query = await request_filter(client=client, session=session, since=start, until=end)
            with named_errors(target):
                count = await _write(
                    out, fmt, query, settings, session=session, since=start, until=end
                )
                out.flush()
            return count

        return work

    newline = "" if fmt is ExportFormat.csv else "\n"
    with reported(settings), open_target(target, newline=newline) as sink:
        count = run(settings, writing_to(sink))
    where = "stdout" if target is None else str(target)
    if settings.wants_json(json) and target is not None:
        print_json({"exported": count, "file": where, "format": fmt.value})
    else:
        settings.err.print(f"exported {plural(count, 'request')} to {where}", markup=False)
