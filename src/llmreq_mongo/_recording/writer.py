"""The recorder's writer task: batches from the queue to MongoDB, the spill file between.

:class:`Writer` holds the state the caller's side (``_recorder``) and the
writer task share: the queue, the batch in flight, what is resolved, and the
records resolved without being acknowledged (which ``flush()`` reports). One
writer task runs :meth:`Writer.run`; nothing in it lets an exception end the
task: a batch that meets an unexpected error is spilled, or failed record by
record through ``on_error``, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any

from bson import ObjectId

from llmreq_mongo.errors import RecorderFull, RecordRejected, RecordsNotWritten

from .delivery import Delivery, Tally, call_back
from .journal import Journal
from .options import RecorderOptions
from .queued import Doc, QueuedRecord, plain, size_of
from .spill_store import SpillStore

__all__ = ["Writer"]

_log = logging.getLogger("llmreq_mongo.recorder")

# How often an idle recorder with records in its spill file asks MongoDB
# whether it is back.
_IDLE_PROBE = 1.0


class Writer:
    """The queue and the writer loop of one recorder."""

    def __init__(self, options: RecorderOptions, tally: Tally) -> None:
        self.options = options
        self.tally = tally
        self.batch_size = options.batch_size
        self.queue: deque[QueuedRecord] = deque()
        self.inflight: list[QueuedRecord] = []
        self.abandoned: list[Doc] = []
        self.pending = 0  # accepted and not yet resolved: the queue and the batch in flight
        self.pending_bytes = 0  # their encoded size
        self.resolved = 0
        #: Records resolved without an acknowledgement, by id, with their
        #: place in the order of acceptance; a replay that stores one removes it.
        self.unacked: dict[ObjectId, int] = {}
        self.flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.running = True
        self.delivery: Delivery | None = None
        self.store: SpillStore | None = None
        self.journal: Journal | None = None
        self.wake = asyncio.Event()
        self.room = asyncio.Event()

    def has_room(self, size: int) -> bool:
        """Whether a record of ``size`` bytes fits in the queue.

        Both bounds apply: fewer than ``max_queue`` records, and ``size``
        more bytes within ``max_queue_bytes``. A record larger than
        ``max_queue_bytes`` alone fits an empty queue, so it never waits for
        room that cannot come.
        """
        options = self.options
        return self.pending < options.max_queue and (
            self.pending_bytes + size <= options.max_queue_bytes or not self.pending
        )

    def full(self, document: QueuedRecord) -> ObjectId:
        """A record offered to a full queue: drop it (and return its id) or refuse it."""
        record_id = document.record_id
        options = self.options
        if self.pending >= options.max_queue:
            held = f"{options.max_queue} records (max_queue)"
        else:
            held = (
                f"{self.pending_bytes:,} bytes and a record of {document.size:,} more would pass "
                f"max_queue_bytes ({options.max_queue_bytes:,})"
            )
        if options.on_full == "drop":
            self.tally.dropped += 1
            if math.log10(self.tally.dropped).is_integer():  # 1, 10, 100...: bounded logging
                _log.warning(
                    "the recorder's queue is full (%s); %d record(s) dropped so far",
                    held,
                    self.tally.dropped,
                )
            if options.on_drop is not None:
                call_back(options.on_drop, "on_drop", plain(document))
            return record_id
        hint = (
            "await recorder.arecord(...) waits for room"
            if options.on_full == "block"
            else "raise max_queue or max_queue_bytes, or use on_full='block' and arecord() "
            "to wait for room"
        )
        raise RecorderFull(
            f"the recorder's queue holds {held} and the record was not accepted; {hint}"
        )

    # -- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Replay, then write batches until stopped with an empty queue, then replay again."""
        await self._replay()
        while True:
            batch = await self._next_batch()
            if batch is None:
                await self._replay()
                continue
            if not batch:
                break
            await self._write_guarded(batch)
            if self.running and not self._is_offline():
                await self._replay()
        await self._replay_before_stop()

    async def _replay_before_stop(self) -> None:
        # stop() gives MongoDB until its deadline to take the spill file back.
        delivery, loop = self.delivery, asyncio.get_running_loop()
        while self.store is not None and self.store.waiting and delivery is not None:
            if loop.time() >= delivery.stop_deadline:
                return
            delivery.next_probe = 0.0
            await self._replay()
            if self.store.waiting:
                await asyncio.sleep(min(0.2, max(delivery.stop_deadline - loop.time(), 0)))

    async def _next_batch(self) -> list[QueuedRecord] | None:
        """The next batch; [] when stopping with an empty queue; None to try a replay."""
        queue = self.queue
        while not queue:
            if not self.running:
                return []
            self.wake.clear()
            if self.store is not None and self.store.waiting:
                try:
                    await asyncio.wait_for(self.wake.wait(), _IDLE_PROBE)
                except asyncio.TimeoutError:
                    return None
            else:
                await self.wake.wait()
        if len(queue) < self.batch_size and self.running and not self.flush_waiters:
            self.wake.clear()
            loop = asyncio.get_running_loop()
            timer = loop.call_later(self.options.flush_interval, self.wake.set)
            try:
                await self.wake.wait()
            finally:
                timer.cancel()
        count = min(len(queue), self.batch_size)
        return [queue.popleft() for _ in range(count)]

    async def _write_guarded(self, batch: list[QueuedRecord]) -> None:
        try:
            await self._write_queued(batch)
        except Exception as exc:  # a bug must not end the writer
            _log.exception("the recorder's writer met an unexpected error on a batch")
            self.tally.last_error = exc
            self.inflight = []
            if not await self.spill(batch):
                for doc in batch:
                    self.fail(doc, exc)
            self.resolve(batch, set())

    async def _write_queued(self, batch: list[QueuedRecord]) -> None:
        self.inflight = batch
        journal = self.journal
        if journal is not None:
            # On disk before it is sent (this also waits for a write under way).
            await journal.write()
        written, left = await self.send(batch, may_give_up=self.store is not None)
        if left and not await self.spill(left):
            if self.running:
                # No file to take them: keep trying, until stop() if need be.
                more, left = await self.send(left, may_give_up=False)
                written.extend(more)
            if left:
                # Stopping, past the stop deadline: stop() reports these and the rest.
                self.abandoned = left + list(self.queue)
                self.queue.clear()
                given_up = {doc["_id"] for doc in left}
                batch = [doc for doc in batch if doc["_id"] not in given_up]
        self.inflight = []
        if journal is not None:
            await journal.resolved(batch)  # first: flush() finds the file emptied
        self.resolve(batch, written)

    # -- pieces shared with stop() ----------------------------------------------------

    async def finish(self, crash: BaseException | None) -> None:
        """At stop: spill what is left, or count and report it; let the spill file go.

        Raises:
            RecordsNotWritten: records could be neither written nor spilled.
        """
        left = [*self.abandoned, *self.inflight, *self.queue]
        self.abandoned, self.inflight = [], []
        self.queue.clear()
        error: RecordsNotWritten | None = None
        if left and not await self.spill(left):
            reason = "MongoDB did not acknowledge them before the stop timeout"
            if crash is not None:
                reason = f"the recorder's writer failed ({crash!r})"
            self.tally.unwritten += len(left)
            advice = None
            if self.store is not None:  # there is a spill file, and it could not take them
                reason += ", and the spill file could not take them (the log says why)"
                advice = (
                    "Make the spill file writable (its directory, its disk's free space), "
                    "or raise the stop timeout"
                )
            error = RecordsNotWritten(len(left), reason, advice=advice)
        self.resolve(left, set())
        for _, future in self.flush_waiters:
            if not future.done():
                future.set_result(None)
        if self.store is not None:
            await self.store.close()
        if error is not None:
            raise error

    def resolve(self, batch: Sequence[Doc], written: Collection[ObjectId]) -> None:
        """Account for records written, spilled or failed; wake ``flush()`` waiters.

        ``written`` holds ids from ``batch`` only, each once: as many as the
        batch holds means every record was written (the common case, which
        then costs nothing per record).
        """
        start = self.resolved
        self.resolved += len(batch)
        self.pending -= len(batch)
        self.pending_bytes -= size_of(batch)
        self.room.set()
        if len(written) < len(batch):
            acknowledged = set(written)
            for i, doc in enumerate(batch):
                if doc["_id"] not in acknowledged:
                    self.unacked[doc["_id"]] = start + i
        for target, future in self.flush_waiters:
            if self.resolved >= target and not future.done():
                future.set_result(None)

    def unwritten_before(self, target: int) -> int:
        """Records accepted before ``target`` that are not acknowledged."""
        return sum(1 for seq in self.unacked.values() if seq < target)

    def fail(self, doc: Doc, exc: BaseException) -> None:
        """Fail one record alone, through ``on_error``."""
        self.tally.failed += 1
        error = RecordRejected(doc["_id"], 0, f"it could not be written: {exc!r}")
        if self.options.on_error is not None:
            call_back(self.options.on_error, "on_error", plain(doc), error)

    async def send(
        self, docs: Sequence[Doc], *, may_give_up: bool
    ) -> tuple[list[ObjectId], list[Doc]]:
        """Deliver ``docs``; a stored record is no longer owed to ``flush()``."""
        if self.delivery is None:  # start() makes it before the writer runs
            return [], list(docs)
        written, left = await self.delivery.deliver(docs, may_give_up=may_give_up)
        if self.unacked:
            for record_id in written:
                self.unacked.pop(record_id, None)
        return written, left

    async def _send_replayed(self, docs: list[dict[str, Any]]) -> tuple[list[ObjectId], list[Doc]]:
        return await self.send(docs, may_give_up=True)

    def _is_offline(self) -> bool:
        return self.delivery is not None and self.delivery.offline

    async def spill(self, docs: Sequence[Doc]) -> bool:
        """Put ``docs`` in the spill file for replay; False without one or when it fails."""
        if self.store is None:
            return False
        journal = self.journal
        if journal is None:
            return await self.store.spill(docs)
        fresh = [doc for doc in docs if not journal.is_on_disk(doc["_id"])]
        return await self.store.spill(fresh, already=len(docs) - len(fresh))

    async def _replay(self) -> None:
        store, delivery = self.store, self.delivery
        if store is None or not store.waiting or delivery is None:
            return
        if delivery.offline and asyncio.get_running_loop().time() < delivery.next_probe:
            return  # not yet time to ask MongoDB again
        if await store.replay(self._send_replayed) and self.journal is not None:
            await self.journal.rewrite_owed()
