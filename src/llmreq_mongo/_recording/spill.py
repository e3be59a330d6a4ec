"""The recorder's spill file: records MongoDB could not take, kept on disk for replay.

One record per line (JSON Lines), each line the exact stored document in
MongoDB Extended JSON (relaxed mode): ids as ``{"$oid": ...}``, timestamps as
``{"$date": ...}``, the client link as ``{"$ref": ..., "$id": ...}``. The
payload is already in its stored form, where no key starts with ``$``, so no
payload value can be mistaken for one of those types when the line is read.

Each line also names the namespace it belongs to, ``"$ns": "database.collection"``
(its last key; a stored document never has a ``$`` key of its own, so it
cannot clash). A recorder refuses to replay a file into another namespace.
Lines without it were written before the format named its database: they are
replayed into the database of the recorder that reads them, as they always were.

Lines are appended, flushed and fsynced before the records count as spilled.
Before appending, a torn last line (a crash or a full disk mid-write) is
moved to ``<spill file>.corrupt`` and cut off, so it cannot swallow the next
record; an append that fails is rolled back to the file's previous length. A
line that cannot be read back is copied to ``.corrupt`` and reported rather
than dropped.

These functions block on disk I/O: the recorder calls them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from bson import DBRef, ObjectId, json_util

from llmreq_mongo._checks import MAX_SESSION_KEY

from .queued import plain

__all__ = [
    "SpillReader",
    "append_records",
    "corrupt_path",
    "has_records",
    "namespaces",
    "remove",
    "repair_tail",
    "rewrite",
    "truncate",
]

_log = logging.getLogger("llmreq_mongo.recorder")

_JSON_OPTIONS = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, tz_aware=True, tzinfo=dt.timezone.utc
)
_NS_KEY = "$ns"
# Inside a JSON string every quote is escaped, so this byte string can only be
# the key itself (a payload's own keys never start with "$" once stored).
_NS_MARK = b'"$ns": "'
_CHUNK = 1 << 16


def corrupt_path(path: Path) -> Path:
    """Where unreadable lines of the spill file ``path`` are kept."""
    return path.with_name(path.name + ".corrupt")


def fsync_directory(path: Path) -> None:
    """Make a new or removed directory entry of ``path`` durable (where the platform can)."""
    # A new file's directory entry must reach the disk too, or a crash can
    # lose the whole file. Not every platform can open a directory.
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def encode_line(doc: Mapping[str, Any], namespace: str | None) -> bytes:
    """One line of the spill file for ``doc``."""
    # A queued record is decoded afresh: it keeps only its bytes in memory.
    text = json_util.dumps(plain(doc), json_options=_JSON_OPTIONS)
    if namespace is not None:
        text = f"{text[:-1]}, {json.dumps(_NS_KEY)}: {json.dumps(namespace)}}}"
    return (text + "\n").encode("utf-8")


def _keep_corrupt(path: Path, raw: bytes) -> None:
    with corrupt_path(path).open("ab") as file:
        file.write(raw if raw.endswith(b"\n") else raw + b"\n")
        file.flush()
        os.fsync(file.fileno())


def repair_tail(path: Path) -> int:
    """Move a torn last line (one without its newline) to ``.corrupt`` and cut it off.

    Returns:
        The number of bytes cut off (0 when the file ends cleanly or is absent).

    Raises:
        OSError: the torn line could not be kept; it was then ended with a
            newline instead, so that it cannot swallow the next record.
    """
    try:
        file = path.open("r+b")
    except FileNotFoundError:
        return 0
    with file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return 0
        start = size
        while start > 0:  # back to the last newline, a chunk at a time
            step = min(_CHUNK, start)
            file.seek(start - step)
            found = file.read(step).rfind(b"\n")
            if found >= 0:
                start = start - step + found + 1
                break
            start -= step
        file.seek(start)
        torn = file.read()
        try:
            _keep_corrupt(path, torn)
        except OSError:
            file.seek(0, os.SEEK_END)
            file.write(b"\n")
            file.flush()
            os.fsync(file.fileno())
            raise
        file.truncate(start)
        file.flush()
        os.fsync(file.fileno())
    _log.error(
        "the spill file %s ended in a torn line (%d bytes); it was moved to %s",
        path,
        len(torn),
        corrupt_path(path),
    )
    return len(torn)


def append_records(
    path: Path,
    documents: Iterable[Mapping[str, Any]],
    namespace: str | None = None,
    *,
    repair: bool = True,
) -> int:
    """Append ``documents`` to the spill file and make them durable.

    A torn last line is set aside first (:func:`repair_tail`; pass
    ``repair=False`` when the caller has done it). Failing to keep it is
    logged, and the append goes on: the line was ended with a newline.

    Returns:
        How many records were written.

    Raises:
        OSError: the file could not be written; it is left at its previous
            length, and nothing counts as spilled.
    """
    data = b"".join(encode_line(doc, namespace) for doc in documents)
    if not data:
        return 0
    count = data.count(b"\n")
    if repair:
        try:
            repair_tail(path)
        except OSError as exc:
            _log.error("could not set the torn last line of %s aside: %s", path, exc)
    created = not path.exists()
    with path.open("ab") as file:
        size = file.seek(0, os.SEEK_END)
        try:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        except OSError:
            # Leave no half-written line behind for the next append to join.
            try:
                file.truncate(size)
                os.fsync(file.fileno())
            except OSError:
                pass
            raise
    if created:
        fsync_directory(path)
    return count


def has_records(path: Path) -> bool:
    """Whether the spill file exists and holds anything."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def namespaces(path: Path) -> set[str]:
    """The namespaces named by the lines of the spill file (empty for an old file)."""
    found: set[str] = set()
    if not path.is_file():  # absent, or a device such as /dev/full that reads forever
        return found
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return found
    with file:
        for raw in file:
            at = raw.rfind(_NS_MARK)
            if at < 0:
                continue
            end = raw.find(b'"', at + len(_NS_MARK))
            if end > 0:
                found.add(raw[at + len(_NS_MARK) : end].decode("utf-8", "replace"))
    return found


def truncate(path: Path) -> None:
    """Empty the spill file: every record in it is acknowledged.

    Not fsynced: if a crash undoes it, the records are replayed again and
    count as duplicates.
    """
    try:
        os.truncate(path, 0)
    except FileNotFoundError:
        return


def rewrite(
    path: Path, documents: Iterable[Mapping[str, Any]], rest_from: int | None, namespace: str
) -> None:
    """Replace the file by ``documents`` followed by its own bytes from ``rest_from`` on.

    ``rest_from=None`` keeps none of its bytes.

    Written to a temporary file and renamed over the old one, so a crash
    leaves either file whole.
    """
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        out.write(b"".join(encode_line(doc, namespace) for doc in documents))
        if rest_from is not None:
            with path.open("rb") as old:
                old.seek(rest_from)
                while chunk := old.read(_CHUNK):
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    fsync_directory(path)


def remove(path: Path) -> None:
    """Delete the spill file once every record in it is acknowledged."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_directory(path)


#: The fields of a stored request a read needs, and the types it reads them as.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "_id": (ObjectId,),
    "created_at": (dt.datetime,),
    "updated_at": (dt.datetime,),
    "llm_client": (DBRef,),
    "llm_client_id": (ObjectId,),
    "session_key": (str, type(None)),
    "is_aggregation": (bool,),
    "response": (dict, type(None)),
}


def _check_fields(doc: Mapping[str, Any]) -> None:
    """Refuse a line whose fields are not of the types a stored request has.

    A line the recorder wrote always passes; one edited by hand, or written
    by something else, that holds a session key of 123 or a date as text
    would be stored as it is, and every read that meets it would fail.

    Raises:
        ValueError: a field is of another type (the line goes to ``.corrupt``).
    """
    for name, types in _FIELD_TYPES.items():
        if name in doc and not isinstance(doc[name], types):
            raise ValueError(f"{name} is {type(doc[name]).__name__}, not a stored {name}")
    key = doc.get("session_key")
    if isinstance(key, str) and len(key) > MAX_SESSION_KEY:
        raise ValueError(f"session_key is longer than {MAX_SESSION_KEY} characters")


class SpillReader:
    """Read a spill file back, a chunk of records at a time.

    Attributes:
        corrupt: lines that could not be read (copied to ``.corrupt``).
        unkept: unreadable lines that could not be copied either; while any
            remain the spill file must not be removed.
        offset: the byte offset of the next line to read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.corrupt = 0
        self.unkept = 0
        self.offset = 0
        self._file: IO[bytes] | None = path.open("rb")
        self._line = 0

    def read(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` records; an empty list at the end of the file."""
        records: list[dict[str, Any]] = []
        if self._file is None:
            return records
        while len(records) < count:
            raw = self._file.readline()
            if not raw:
                self.close()
                break
            self.offset += len(raw)
            self._line += 1
            if not raw.strip():
                continue
            try:
                doc = json_util.loads(raw.decode("utf-8"), json_options=_JSON_OPTIONS)
                if not isinstance(doc, dict) or "_id" not in doc:
                    raise ValueError("not a stored record")
                _check_fields(doc)
            except Exception as exc:  # any bad line, never the reader
                # Decimal's InvalidOperation, OverflowError and RecursionError
                # come out of json_util as well as ValueError.
                self._set_aside(raw, exc)
                continue
            doc.pop(_NS_KEY, None)
            records.append(doc)
        return records

    def _set_aside(self, raw: bytes, exc: Exception) -> None:
        self.corrupt += 1
        torn = not raw.endswith(b"\n")
        where = str(corrupt_path(self.path))
        try:
            _keep_corrupt(self.path, raw)
        except OSError as error:
            self.unkept += 1
            where = f"nowhere ({error}); the spill file is kept"
        _log.error(
            "line %d of the spill file %s cannot be read (%s%s: %s); it was copied to %s",
            self._line,
            self.path,
            "a torn last line, " if torn else "",
            type(exc).__name__,
            str(exc)[:200],
            where,
        )

    def close(self) -> None:
        """Close the file (reading again returns nothing)."""
        if self._file is not None:
            self._file.close()
            self._file = None
