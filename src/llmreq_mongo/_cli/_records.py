"""Checking import files, record by record, before anything is written.

Two formats: the JSON Lines that ``llmreq export`` writes, and the JSON array
Django's ``dumpdata`` writes for the reference's models. Every record is
checked completely (JSON, fields, payload, times); the result is a list of
:class:`Record` ready to be written and the bad records with their line
numbers. See ``_import.py`` for how they are written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from bson import ObjectId

from llmreq_mongo._capture import LLMResponse, response_from
from llmreq_mongo._checks import check_session_key
from llmreq_mongo._queries import normalize_payload
from llmreq_mongo.errors import InvalidInput

from ._durations import in_utc

__all__ = [
    "ClientRef",
    "ImportFormat",
    "OnError",
    "Outcome",
    "Record",
    "check_file",
    "json_error",
    "parse_fixture",
    "parse_jsonl_line",
]

_JSONL_KEYS = (
    "id",
    "created_at",
    "updated_at",
    "llm_client",
    "session_key",
    "is_aggregation",
    "request",
)
#: Keys a line may leave out: an export written before responses were recorded.
_JSONL_OPTIONAL = ("response",)
_DJANGO_CLIENT = "llm_client.llmclient"
_DJANGO_REQUEST = "llm_client.llmclientrequests"
_CLIENT_FIELDS = ("name", "description", "created_at", "updated_at")
_TOO_DEEP = "nested too deeply to read (JSON arrays and objects inside each other)"


class ImportFormat(str, Enum):
    """The file formats ``import`` reads."""

    auto = "auto"
    jsonl = "jsonl"
    django = "django"


class OnError(str, Enum):
    """What a bad record does to the run."""

    stop = "stop"
    skip = "skip"


@dataclass(frozen=True)
class ClientRef:
    """The client a record belongs to, as the file names it."""

    name: str
    id: ObjectId | None = None
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """One checked request record, ready to be written."""

    line: int
    id: ObjectId
    created_at: dt.datetime
    updated_at: dt.datetime
    client: ClientRef
    session_key: str | None
    is_aggregation: bool
    request: Any
    response: LLMResponse | None = None


@dataclass
class Outcome:
    """What an import did."""

    imported: int = 0
    already_present: int = 0
    clients_created: int = 0
    ignored: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


# -- checking ---------------------------------------------------------------


def _time(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an ISO 8601 string, got {_kind(value)}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not an ISO 8601 time") from None
    # Django writes naive times when USE_TZ is off; they are read as UTC.
    return in_utc(parsed, what=f"{what} {value!r}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _object_id(value: Any, what: str) -> ObjectId:
    if not isinstance(value, str) or len(value) != 24 or not ObjectId.is_valid(value):
        raise InvalidInput(f"{what} must be a 24-digit hex ObjectId, got {value!r}")
    return ObjectId(value)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise InvalidInput(f"{what} must be a string of 1 to 255 characters, got {value!r}")
    return value


def _payload_and_flags(request: Any, session_key: Any, is_aggregation: Any) -> str | None:
    normalize_payload(request)
    if not isinstance(is_aggregation, bool):
        raise InvalidInput(f"is_aggregation must be true or false, got {_kind(is_aggregation)}")
    return check_session_key(session_key)


def json_error(exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON text, and where: ``Expecting value at column 5``.

    Some of the decoder's messages already end with "at" and expect the
    position after them ("Unterminated string starting at"); the position is
    added once, whatever the message.
    """
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def parse_jsonl_line(text: str, line: int) -> Record:
    """Check one line of an export completely.

    Raises:
        InvalidInput: anything is wrong with it (the message says what).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not JSON ({json_error(exc)})") from None
    except RecursionError:
        raise InvalidInput(_TOO_DEEP) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a JSON object, got {_kind(data)}")
    missing = [k for k in _JSONL_KEYS if k not in data]
    extra = sorted(set(data) - set(_JSONL_KEYS) - set(_JSONL_OPTIONAL))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(extra)}"] if extra else []
        )
        raise InvalidInput(f"not an llmreq export line: {'; '.join(parts)}")
    client = data["llm_client"]
    if not isinstance(client, dict) or set(client) != {"id", "name"}:
        raise InvalidInput('llm_client must be {"id": ..., "name": ...}')
    key = _payload_and_flags(data["request"], data["session_key"], data["is_aggregation"])
    response = _response(data.get("response"))
    return Record(
        line=line,
        id=_object_id(data["id"], "id"),
        created_at=_time(data["created_at"], "created_at"),
        updated_at=_time(data["updated_at"], "updated_at"),
        client=ClientRef(
            name=_name(client["name"], "llm_client.name"),
            id=_object_id(client["id"], "llm_client.id"),
        ),
        session_key=key,
        is_aggregation=data["is_aggregation"],
        request=data["request"],
        response=response,
    )


def _response(value: Any) -> LLMResponse | None:
    """A line's ``response``: null, or an object of :class:`LLMResponse`'s fields."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"response must be an object or null, got {_kind(value)}")
    fields = dict(value)
    if "completed_at" in fields:
        fields["completed_at"] = _time(fields["completed_at"], "response.completed_at")
    return response_from(fields)


def _fixture_entries(text: str) -> Iterator[tuple[int, Any]]:
    """The entries of a JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "[":
        raise InvalidInput("line 1: a Django fixture is a JSON array")
    pos = _skip_ws(text, pos + 1)
    if text[pos : pos + 1] == "]":
        return
    while True:
        line = text.count("\n", 0, pos) + 1
        try:
            entry, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {exc.lineno}: not JSON ({json_error(exc)})") from None
        except RecursionError:
            # The end of a value too deep to parse cannot be found, so the
            # entries after it cannot be told apart: this stops the run.
            raise InvalidInput(f"line {line}: {_TOO_DEEP}") from None
        yield line, entry
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] == "]":
            return
        if text[pos : pos + 1] != ",":
            raise InvalidInput(f"line {text.count(chr(10), 0, pos) + 1}: expected ',' or ']'")
        pos = _skip_ws(text, pos + 1)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _is_pk(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _fixture_client(entry: Mapping[str, Any]) -> ClientRef:
    fields = entry["fields"]
    if not _is_pk(entry.get("pk")):
        raise InvalidInput(f"pk must be an integer, got {entry.get('pk')!r}")
    description = fields.get("description") or ""
    if not isinstance(description, str):
        raise InvalidInput(f"description must be a string, got {_kind(description)}")
    for stamp in ("created_at", "updated_at"):
        if stamp in fields:
            _time(fields[stamp], stamp)
    extra = {k: v for k, v in fields.items() if k not in _CLIENT_FIELDS}
    metadata, _ = normalize_payload(extra)
    return ClientRef(
        name=_name(fields.get("name"), "name"), description=description, metadata=metadata
    )


def _derived_id(pk: int, client: str, created_at: dt.datetime) -> ObjectId:
    """A stable id for a fixture record: its time, then a hash of what identifies it."""
    seconds = max(0, min(int(created_at.timestamp()), 2**32 - 1))
    digest = hashlib.sha256(f"{_DJANGO_REQUEST}:{pk}:{client}:{created_at.isoformat()}".encode())
    return ObjectId(seconds.to_bytes(4, "big") + digest.digest()[:8])


def _fixture_request(
    entry: Mapping[str, Any], line: int, clients: Mapping[Any, ClientRef]
) -> Record:
    fields = entry["fields"]
    pk = entry["pk"]
    if isinstance(pk, bool) or not isinstance(pk, int):
        raise InvalidInput(f"pk must be an integer, got {pk!r}")
    client_pk = fields.get("llm_client")
    if not _is_pk(client_pk) or client_pk not in clients:
        raise InvalidInput(
            f"llm_client {client_pk!r} is not an {_DJANGO_CLIENT} entry of this file"
        )
    client = clients[client_pk]
    # The reference declares BooleanField(default=False, null=True): its
    # fixtures may hold null, which means the default.
    is_aggregation = fields.get("is_aggregation")
    if is_aggregation is None:
        is_aggregation = False
    key = _payload_and_flags(fields.get("request"), fields.get("session_key"), is_aggregation)
    for stamp in ("created_at", "updated_at"):
        if stamp not in fields:
            raise InvalidInput(f"{stamp} is missing")
    created = _time(fields["created_at"], "created_at")
    return Record(
        line=line,
        id=_derived_id(pk, client.name, created),
        created_at=created,
        updated_at=_time(fields["updated_at"], "updated_at"),
        client=client,
        session_key=key,
        is_aggregation=is_aggregation,
        request=fields.get("request"),
    )


def parse_fixture(text: str, outcome: Outcome, on_error: OnError) -> list[Record]:
    """Check every entry of a Django fixture; bad ones go to ``outcome.bad``.

    Raises:
        InvalidInput: the file is not a JSON array (this always stops the run).
    """
    entries = list(_fixture_entries(text))
    clients: dict[Any, ClientRef] = {}
    requests: list[tuple[int, int, Mapping[str, Any]]] = []
    for number, (line, entry) in enumerate(entries, start=1):
        model = entry.get("model") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("fields"), dict):
            message = 'expected {"model": ..., "pk": ..., "fields": {...}}'
            _bad(outcome, on_error, line, f"{_entry(number, entry)}: {message}")
            continue
        if not isinstance(model, str) or model.lower() not in (_DJANGO_CLIENT, _DJANGO_REQUEST):
            outcome.ignored += 1
            continue
        if model.lower() == _DJANGO_REQUEST:
            requests.append((line, number, entry))
            continue
        try:
            clients[entry.get("pk")] = _fixture_client(entry)
        except InvalidInput as exc:
            _bad(outcome, on_error, line, f"{_entry(number, entry)}: {exc}")
    records: list[Record] = []
    for line, number, entry in requests:
        try:
            records.append(_fixture_request(entry, line, clients))
        except InvalidInput as exc:
            _bad(outcome, on_error, line, f"{_entry(number, entry)}: {exc}")
    return records


def _entry(number: int, entry: Any) -> str:
    """Which entry of a fixture: its place and its pk, as a line alone may not tell.

    ``dumpdata`` without ``--indent`` writes the whole array on one line.
    """
    pk = entry.get("pk") if isinstance(entry, dict) else None
    shown = f" (pk {pk!r})" if isinstance(pk, (int, str)) and len(repr(pk)) <= 40 else ""
    return f"entry {number}{shown}"


class _Stop(Exception):
    """A bad record under ``--on-error stop``."""


def _bad(outcome: Outcome, on_error: OnError, line: int, message: str) -> None:
    outcome.bad.append((line, message))
    if on_error is OnError.stop:
        raise _Stop


def _jsonl_records(path: Path, outcome: Outcome, on_error: OnError) -> Iterator[Record]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                yield parse_jsonl_line(raw.decode("utf-8"), number)
            except UnicodeDecodeError:
                _bad(outcome, on_error, number, "not UTF-8 text")
            except InvalidInput as exc:
                _bad(outcome, on_error, number, str(exc))


def _sniff(path: Path, name: str) -> ImportFormat:
    with path.open("rb") as head:
        start = head.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"["):
        return ImportFormat.django
    if start.startswith(b"{") or not start:
        return ImportFormat.jsonl
    raise InvalidInput(
        f"{name} is neither JSON Lines nor a Django fixture (it starts with {start[:20]!r})"
    )


def check_file(
    path: Path, fmt: ImportFormat, on_error: OnError, *, name: str | None = None
) -> tuple[Outcome, Iterable[Record]]:
    """Check every record of ``path`` before anything is written (no database I/O).

    ``name`` is what messages call the file (``standard input`` for a copy of
    it); its path by default.

    Returns:
        The outcome so far (bad records in ``outcome.bad``) and the records to
        write: a list for a fixture, a second streaming read for JSON Lines.

    Raises:
        InvalidInput: a bad record under ``--on-error stop``, or a file that
            is neither format.
    """
    outcome = Outcome()
    shown = str(path) if name is None else name
    if fmt is ImportFormat.auto:
        fmt = _sniff(path, shown)
    try:
        if fmt is ImportFormat.django:
            fixture = path.read_text(encoding="utf-8")
            return outcome, parse_fixture(fixture, outcome, on_error)
        for _ in _jsonl_records(path, outcome, on_error):
            pass
    except _Stop:
        line, message = outcome.bad[-1]
        raise InvalidInput(
            f"line {line}: {message}; nothing was imported "
            "(fix the line, or pass --on-error skip to import the others)"
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{shown} is not UTF-8 text") from None
    # The second read meets the same bad lines, already counted: they are skipped.
    return outcome, _jsonl_records(path, Outcome(), OnError.skip)
