"""The recorder's spill file: records MongoDB could not take, kept on disk for replay.

One record per line (JSON Lines), each line the exact stored document in
MongoDB Extended JSON (relaxed mode): ids as ``{"$oid": ...}``, timestamps as
``{"$date": ...}``, the client link as ``{"$ref": ..., "$id": ...}``. The
payload is already in its stored form, where no key starts with ``$``, so no
payload value can be mistaken for one of those types when the line is read.

Lines are appended, flushed and fsynced before the records count as spilled.
A line that cannot be read back (a crash mid-write can leave a torn last line)
is copied to ``<spill file>.corrupt`` and reported rather than dropped.

These functions block on disk I/O: the recorder calls them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from bson import json_util
from bson.errors import BSONError

__all__ = ["SpillReader", "append_records", "corrupt_path", "has_records", "remove"]

_log = logging.getLogger("llmreq_mongo.recorder")

_JSON_OPTIONS = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, tz_aware=True, tzinfo=dt.timezone.utc
)


def corrupt_path(path: Path) -> Path:
    """Where unreadable lines of the spill file ``path`` are kept."""
    return path.with_name(path.name + ".corrupt")


def _fsync_directory(path: Path) -> None:
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


def append_records(path: Path, documents: Iterable[Mapping[str, Any]]) -> int:
    """Append ``documents`` to the spill file and make them durable.

    Returns:
        How many records were written.

    Raises:
        OSError: the file could not be written; nothing counts as spilled.
    """
    lines = [json_util.dumps(doc, json_options=_JSON_OPTIONS) + "\n" for doc in documents]
    if not lines:
        return 0
    created = not path.exists()
    with path.open("ab") as file:
        file.write("".join(lines).encode("utf-8"))
        file.flush()
        os.fsync(file.fileno())
    if created:
        _fsync_directory(path)
    return len(lines)


def has_records(path: Path) -> bool:
    """Whether the spill file exists and holds anything."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def remove(path: Path) -> None:
    """Delete the spill file once every record in it is acknowledged."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_directory(path)


class SpillReader:
    """Read a spill file back, a chunk of records at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.corrupt = 0
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
            self._line += 1
            if not raw.strip():
                continue
            try:
                doc = json_util.loads(raw.decode("utf-8"), json_options=_JSON_OPTIONS)
                if not isinstance(doc, dict) or "_id" not in doc:
                    raise ValueError("not a stored record")
            except (ValueError, TypeError, BSONError) as exc:
                self._keep_corrupt(raw, exc)
                continue
            records.append(doc)
        return records

    def _keep_corrupt(self, raw: bytes, exc: Exception) -> None:
        self.corrupt += 1
        torn = not raw.endswith(b"\n")
        with corrupt_path(self.path).open("ab") as file:
            file.write(raw if not torn else raw + b"\n")
            file.flush()
            os.fsync(file.fileno())
        _log.error(
            "line %d of the spill file %s cannot be read (%s%s); it was copied to %s",
            self._line,
            self.path,
            "a torn last line, " if torn else "",
            exc,
            corrupt_path(self.path),
        )

    def close(self) -> None:
        """Close the file (reading again returns nothing)."""
        if self._file is not None:
            self._file.close()
            self._file = None
