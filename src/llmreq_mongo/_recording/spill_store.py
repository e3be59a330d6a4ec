"""The recorder's side of its spill file: lock, namespace, spilling, journaling and replay.

A :class:`SpillStore` belongs to one running recorder. It resolves the
``{pid}`` placeholder of ``spill_path``, holds the file's lock, refuses a
file of another namespace, and runs every disk chore in a thread. A chore
that fails (a lock file, a ``.corrupt`` file, a removal) is logged and
counted in ``stats.housekeeping_errors``; it never stops the recorder.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bson import ObjectId

from llmreq_mongo.errors import InvalidInput, SpillFileMismatch

from . import spill
from .delivery import Tally
from .queued import Doc
from .spill_lock import SpillLock

__all__ = ["SpillStore", "resolve_path"]

_log = logging.getLogger("llmreq_mongo.recorder")

#: Sends records and returns (acknowledged ids, records left unwritten).
Send = Callable[[list[dict[str, Any]]], Awaitable[tuple[list[ObjectId], list[Doc]]]]


def resolve_path(template: Path) -> Path:
    """``template`` with ``{pid}`` replaced by this process's id."""
    return Path(str(template).replace("{pid}", str(os.getpid())))


class SpillStore:
    """One recorder's spill file.

    Attributes:
        path: the file, ``{pid}`` filled in.
        waiting: the file may hold records not yet acknowledged.
    """

    def __init__(self, template: Path, tally: Tally, *, namespace: str, batch: int) -> None:
        self.path = resolve_path(template)
        self.namespace = namespace
        self.waiting = False
        self._tally = tally
        self._batch = batch
        self._lock = SpillLock(self.path)
        self._keep = False  # unreadable lines could not be set aside: never empty the file
        self.io = asyncio.Lock()  # one disk chore at a time

    def housekeeping(self, what: str, exc: BaseException) -> None:
        self._tally.housekeeping_errors += 1
        self._tally.last_error = exc
        _log.error("the spill file %s: could not %s (%s); recording goes on", self.path, what, exc)

    async def open(self) -> None:
        """Take the lock and check the file belongs to this namespace.

        Raises:
            InvalidInput: the file's directory does not exist. A chore that
                fails later is logged and recording goes on; a directory
                missing at the start is a path that is wrong, and a file
                there could never take a record.
            SpillFileInUse: another recorder holds the file.
            SpillFileMismatch: the file holds records of another namespace.
        """
        folder = self.path.parent
        if not await asyncio.to_thread(folder.is_dir):
            raise InvalidInput(
                f"spill_path {self.path}: the directory {folder} does not exist; "
                "create it first, or give a path in a directory that exists"
            )
        try:
            await asyncio.to_thread(self._lock.acquire)
        except OSError as exc:
            self.housekeeping("create its lock file", exc)
        try:
            found = await asyncio.to_thread(spill.namespaces, self.path)
            waiting = await asyncio.to_thread(spill.has_records, self.path)
        except OSError as exc:
            self.housekeeping("read it", exc)
            found, waiting = set(), True
        foreign = sorted(found - {self.namespace})
        if foreign:
            await self.close()
            raise SpillFileMismatch(self.path, self.namespace, foreign)
        self.waiting = waiting

    async def close(self) -> None:
        """Let the lock go."""
        try:
            await asyncio.to_thread(self._lock.release)
        except OSError as exc:  # pragma: no cover - release swallows what it can
            self.housekeeping("release its lock", exc)

    async def append(self, docs: Sequence[Doc]) -> bool:
        """Append ``docs`` durably; False (logged) when they could not be written."""
        if not docs:
            return True
        async with self.io:
            try:
                await asyncio.to_thread(spill.repair_tail, self.path)
            except OSError as exc:
                self.housekeeping("set its torn last line aside", exc)
            try:
                await asyncio.to_thread(
                    functools.partial(
                        spill.append_records, self.path, docs, self.namespace, repair=False
                    )
                )
            except Exception as exc:  # a full disk or a record JSON cannot hold
                self._tally.last_error = exc
                _log.error("could not write %d record(s) to %s: %s", len(docs), self.path, exc)
                return False
        return True

    async def spill(self, docs: Sequence[Doc], *, already: int = 0) -> bool:
        """Spill ``docs`` (plus ``already`` records the file holds) for replay."""
        if not await self.append(docs):
            return False
        count = len(docs) + already
        self._tally.spilled += count
        self.waiting = True
        if count:
            _log.warning("%d record(s) went to the spill file %s", count, self.path)
        return True

    async def acknowledged(self) -> None:
        """Every record journaled so far is acknowledged: empty the file."""
        if self.waiting or self._keep:
            return
        async with self.io:
            try:
                await asyncio.to_thread(spill.truncate, self.path)
            except OSError as exc:
                self.housekeeping("empty it", exc)

    async def replay(self, send: Send) -> bool:
        """Send the file's records; remove it once all are acknowledged.

        Returns:
            True when the file is done with (replayed, or nothing to do).
        """
        if not self.waiting:
            return True
        async with self.io:
            return await self._replay(send)

    async def _replay(self, send: Send) -> bool:
        path = self.path
        try:
            await asyncio.to_thread(spill.repair_tail, path)
        except OSError as exc:
            self.housekeeping("set its torn last line aside", exc)
        if not await asyncio.to_thread(spill.has_records, path):
            self.waiting = False
            return True
        try:
            reader = await asyncio.to_thread(spill.SpillReader, path)
        except OSError as exc:
            self.housekeeping("open it for replay", exc)
            self.waiting = False
            self._keep = True
            return True
        try:
            progress = False
            while True:
                docs = await asyncio.to_thread(reader.read, self._batch)
                if not docs:
                    break
                written, left = await send(docs)
                self._tally.replayed += len(written)
                progress = progress or len(left) < len(docs) or reader.corrupt > 0
                if left:
                    if not progress:
                        return False  # nothing changed: the file stays as it is
                    # MongoDB went away again: keep only what is still owed, so
                    # neither acknowledged records nor set-aside lines come back.
                    rest = reader.offset
                    reader.close()
                    try:
                        await asyncio.to_thread(spill.rewrite, path, left, rest, self.namespace)
                    except OSError as exc:
                        self.housekeeping("compact it", exc)
                    return False
        finally:
            reader.close()
            self._tally.failed += reader.corrupt
        self.waiting = False
        if reader.unkept:
            self._keep = True
            self.housekeeping(
                f"set aside {reader.unkept} unreadable line(s), so the file is kept",
                OSError("corrupt file not writable"),
            )
            return True
        try:
            await asyncio.to_thread(spill.remove, path)
        except OSError as exc:
            self.housekeeping("remove it", exc)
            try:
                await asyncio.to_thread(spill.truncate, path)
            except OSError:
                self._keep = True
            return True
        _log.info("the spill file %s was replayed and removed", path)
        return True
