"""The write-ahead journal of ``spill="always"``: each record on disk before it is sent.

Records are appended to the spill file, and fsynced, as soon as the
journal gets to them: a background step writes everything accepted since
the last one in one append (one fsync serves many records), and the writer
makes sure a batch is on disk before sending it. Once every journaled record
is acknowledged the file is emptied; under a steady load that never leaves a
quiet moment it is compacted to the records still owed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from bson import ObjectId

from . import spill
from .queued import Doc
from .spill_store import SpillStore

__all__ = ["Journal"]

_log = logging.getLogger("llmreq_mongo.recorder")

# Compact the file once it holds this many times more records than are owed.
_COMPACT_RATIO = 4


class Journal:
    """The journal of one recorder under ``spill="always"``."""

    def __init__(self, store: SpillStore, *, batch: int) -> None:
        self.store = store
        self.failed = False
        self._pending: list[Doc] = []
        self._owed: dict[ObjectId, Doc] = {}  # on disk, not yet resolved
        self._lines = 0  # records appended since the file was last emptied
        self._batch = batch
        self._lock = asyncio.Lock()

    def add(self, doc: Doc) -> None:
        """Note a record accepted; it reaches the disk at the next :meth:`write`."""
        self._pending.append(doc)

    def is_on_disk(self, record_id: ObjectId) -> bool:
        """Whether the record is in the file (and not resolved yet)."""
        return record_id in self._owed

    @property
    def waiting(self) -> bool:
        """Whether records wait to be written."""
        return bool(self._pending)

    async def run(self, wake: asyncio.Event) -> None:
        """The background step: write whatever was accepted each time ``wake`` is set."""
        while True:
            await wake.wait()
            wake.clear()
            try:
                await self.write()
            except Exception:  # the writer sends the records all the same
                _log.exception("the recorder's journal could not write")

    async def write(self) -> None:
        """Append every record accepted so far, in one fsynced append."""
        async with self._lock:
            docs, self._pending = self._pending, []
            if not docs:
                return
            if await self.store.append(docs):
                self._lines += len(docs)
                for doc in docs:
                    self._owed[doc["_id"]] = doc
                self.failed = False
            else:
                self.failed = True  # logged by the store; the records are sent all the same

    async def rewrite_owed(self) -> None:
        """After a replay removed the file: put the records still owed back on disk."""
        async with self._lock:
            owed = list(self._owed.values())
            self._lines = len(owed)
            if owed and not await self.store.append(owed):
                self.failed = True

    async def resolved(self, docs: Sequence[Doc]) -> None:
        """Records were written, spilled or failed: they are owed no longer."""
        for doc in docs:
            self._owed.pop(doc["_id"], None)
        # Under the journal's lock: a write under way must not be emptied away.
        async with self._lock:
            if self.store.waiting:
                return  # the file holds records for replay: leave it to the replay
            if not self._owed:
                if self._lines:
                    self._lines = 0
                    await self.store.acknowledged()
            elif self._lines > _COMPACT_RATIO * len(self._owed) + self._batch:
                await self._compact()

    async def _compact(self) -> None:
        owed = list(self._owed.values())
        async with self.store.io:
            try:
                await asyncio.to_thread(
                    spill.rewrite, self.store.path, owed, None, self.store.namespace
                )
                self._lines = len(owed)
            except OSError as exc:
                self.store.housekeeping("compact it", exc)
