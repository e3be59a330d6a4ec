"""``llmreq import``: read back an export, or a Django ``dumpdata`` fixture of the reference.

Two formats, told apart by the file's first character (``--format`` overrides):

- JSON Lines written by ``llmreq export`` (``{`` first). Ids, timestamps and
  responses are kept, so export, import into an empty database and export
  again give the same bytes. A line without ``response`` (an export made
  before responses were recorded) imports as a request alone. A line's
  client is found by id, else by name, else created with that id and name.
- The JSON array Django's ``dumpdata`` writes (``[`` first) for the models
  ``llm_client.llmclient`` and ``llm_client.llmclientrequests``. Clients are
  matched to existing ones by name or created; each request gets an id
  derived from its model, integer pk, client name and ``created_at``, so the
  same fixture always maps to the same ids. Other models are ignored.

Importing is idempotent: a record whose id is already stored is counted as
"already present" and left untouched, never stored twice or overwritten.
Every record is checked completely (JSON, field types, payload, times) before
anything is written; a bad one is reported with its line number, and
``--on-error stop`` (the default) then writes nothing at all, while
``--on-error skip`` imports every other record.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from beanie import PydanticObjectId
from bson import ObjectId
from pymongo.errors import BulkWriteError, PyMongoError

from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import (
    LLMClient,
    LLMClientRequest,
    request_document,
    validate_request,
)
from llmreq_mongo.errors import AlreadyExists, InvalidInput, StorageError

from ._app import Settings, app, reported, run, settings_of
from ._records import ClientRef, ImportFormat, OnError, Outcome, Record, check_file
from ._render import plural, print_json

__all__ = ["import_command", "write_records"]

_BATCH = 500


class _Writer:
    """Writes checked records in batches, resolving each client once."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.clients: dict[tuple[ObjectId | None, str], LLMClient] = {}
        self.batch: list[dict[str, Any]] = []

    async def client(self, ref: ClientRef) -> LLMClient:
        key = (ref.id, ref.name)
        found = self.clients.get(key)
        if found is None:
            found = await self._find_or_create(ref)
            self.clients[key] = found
        return found

    async def _find_or_create(self, ref: ClientRef) -> LLMClient:
        if ref.id is not None:
            by_id = await LLMClient.objects.filter(id=ref.id).first()
            if by_id is not None:
                return by_id
        by_name = await LLMClient.objects.filter(name=ref.name).first()
        if by_name is not None:
            return by_name
        fields: dict[str, Any] = {
            "name": ref.name,
            "description": ref.description,
            "metadata": dict(ref.metadata),
        }
        if ref.id is not None:
            fields["id"] = PydanticObjectId(ref.id)
        try:
            created = await LLMClient.objects.create(**fields)
        except AlreadyExists:  # created by someone else meanwhile
            return await LLMClient.objects.get(name=ref.name)
        self.outcome.clients_created += 1
        return created

    async def add(self, record: Record) -> None:
        client = await self.client(record.client)
        checked = validate_request(
            client,
            record.request,
            record.session_key,
            record.is_aggregation,
            client_model=LLMClient,
            response=record.response,
        )
        doc = request_document(checked, record_id=record.id, now=record.created_at)
        doc["updated_at"] = record.updated_at
        self.batch.append(doc)
        if len(self.batch) >= _BATCH:
            await self.flush()

    async def flush(self) -> None:
        docs, self.batch = self.batch, []
        if not docs:
            return
        coll = LLMClientRequest.get_pymongo_collection()
        try:
            result = await coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != 11000]
            if others:
                raise StorageError(
                    f"MongoDB refused a record (id {docs[others[0]['index']]['_id']}): "
                    f"{others[0].get('errmsg')}"
                ) from exc
            self.outcome.imported += int(exc.details.get("nInserted", len(docs) - len(errors)))
            self.outcome.already_present += len(errors)
            return
        except PyMongoError as exc:
            raise StorageError(f"could not write the imported requests: {exc}") from exc
        self.outcome.imported += len(result.inserted_ids)


async def write_records(records: Iterable[Record], outcome: Outcome) -> Outcome:
    """Write checked records in batches; ids already stored are counted, not rewritten."""
    writer = _Writer(outcome)
    for record in records:
        await writer.add(record)
    await writer.flush()
    return outcome


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="An llmreq export (JSON Lines) or a Django fixture; '-' for standard input."
        ),
    ],
    fmt: Annotated[ImportFormat, typer.Option("--format", help="File format.")] = ImportFormat.auto,
    on_error: Annotated[
        OnError,
        typer.Option(
            "--on-error", help="What a bad record does: stop (import nothing) or skip it."
        ),
    ] = OnError.stop,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import requests from an export or a Django dumpdata fixture (idempotent)."""
    started = time.monotonic()
    settings = settings_of(ctx)
    with contextlib.ExitStack() as cleanup:
        with reported(settings):
            name = None
            if str(file) == "-":
                file, name = cleanup.enter_context(_standard_input()), "standard input"
            elif not file.exists():
                raise InvalidInput(f"{file} does not exist")
            elif not file.is_file():
                raise InvalidInput(f"{file} is not a file")

            outcome, records = check_file(file, fmt, on_error, name=name)

        async def work(handle: Handle) -> Outcome:
            return await write_records(records, outcome)

        outcome = run(settings, work, done=lambda: _so_far(outcome), started=started)
    _report(settings, outcome, json)


@contextlib.contextmanager
def _standard_input() -> Iterator[Path]:
    """``import -``: standard input, kept in a temporary file while the import runs.

    Every record is checked before any is written, so the input is read
    twice: a pipe (``llmreq export -o - | llmreq import -``) is copied first.

    Raises:
        InvalidInput: standard input is a terminal, not a file or a pipe.
    """
    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidInput(
            "import - reads the records from standard input; pipe an export into it "
            "(llmreq export -o - | llmreq import -) or name the file"
        )
    with tempfile.TemporaryDirectory(prefix="llmreq-import-") as folder:
        path = Path(folder) / "stdin"
        with path.open("wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
        yield path


def _so_far(outcome: Outcome) -> str:
    """How far an interrupted import got: what MongoDB acknowledged.

    A batch in flight when the signal came may be stored too; importing the
    file again stores the rest and nothing twice.
    """
    text = f"{plural(outcome.imported, 'request')} imported"
    if outcome.already_present:
        text += f", {outcome.already_present:,} already present"
    return text + "; import the file again to add the rest"


def _report(settings: Settings, outcome: Outcome, json_flag: bool) -> None:
    if settings.wants_json(json_flag):
        print_json(
            {
                "imported": outcome.imported,
                "already_present": outcome.already_present,
                "clients_created": outcome.clients_created,
                "ignored_entries": outcome.ignored,
                "skipped": [{"line": line, "error": message} for line, message in outcome.bad],
            }
        )
        return
    err = settings.err
    for line, message in outcome.bad:
        err.print(f"skipped line {line}: {message}", markup=False)
    parts = [f"imported {plural(outcome.imported, 'request')}"]
    if outcome.already_present:
        parts.append(f"{outcome.already_present:,} already present")
    if outcome.clients_created:
        parts.append(f"{plural(outcome.clients_created, 'new client')}")
    if outcome.bad:
        parts.append(f"{plural(len(outcome.bad), 'bad line')} skipped")
    if outcome.ignored:
        parts.append(f"{plural(outcome.ignored, 'entry', 'entries')} of other models ignored")
    settings.console.print(", ".join(parts), markup=False)
