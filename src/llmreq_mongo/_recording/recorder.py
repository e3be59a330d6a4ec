"""``Recorder``: record requests in the background, in batches, and never lose one quietly.

``record()`` validates a request exactly as ``objects.create`` does, builds
the stored document (its id made on the client) and queues it; no I/O happens
on the caller's path. One writer task sends the queue to MongoDB with
``insert_many(ordered=False)``:

- a batch leaves when ``max_batch`` records wait or ``flush_interval`` has
  passed since the writer saw the first of them;
- a failed batch is sent again with exponential back-off and jitter; records
  an earlier attempt already stored come back as duplicate-key errors on
  ``_id``, which count as written, so each record is stored exactly once;
- a record the server refuses for good (a validator, say) fails alone: it is
  logged and passed to ``on_error``, and the rest of its batch is written;
- when MongoDB stays unreachable past ``retry_deadline``, or at ``stop()``,
  records go to the spill file (``_spill``), replayed by the next recorder
  with the same ``spill_path`` (or by this one once MongoDB is back). Without
  a spill file the records wait in memory, bounded by ``max_queue``, and
  ``stop()`` raises :class:`~llmreq_mongo.errors.RecordsNotWritten` with the
  number it could not write.

This module owns the queue, the life cycle and the writer loop; sending a
batch and sorting out its errors lives in ``_delivery``, the spill file in
``_spill``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from bson import ObjectId

from llmreq_mongo._checks import a_type
from llmreq_mongo._documents import (
    LLMClient,
    LLMClientRequest,
    request_document,
    validate_request,
)
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import (
    InvalidInput,
    RecorderClosed,
    RecorderError,
    RecorderFull,
    RecordRejected,
    RecordsNotWritten,
)

from . import spill
from .delivery import Delivery, Tally, call_back

__all__ = ["OnFull", "Recorder", "RecorderStats"]

#: What ``record()`` does when ``max_queue`` records are waiting.
OnFull = Literal["block", "raise", "drop"]

_log = logging.getLogger("llmreq_mongo.recorder")

# stop() gives the writer this much longer than stop_timeout to finish the
# attempt it is in before cancelling it.
_STOP_GRACE = 5.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"


@dataclass(frozen=True)
class RecorderStats:
    """A snapshot of what a :class:`Recorder` has done so far.

    Attributes:
        accepted: records ``record()``/``arecord()`` accepted.
        queued: accepted records not yet written, spilled or failed (in
            memory, the batch being written included).
        written: records MongoDB acknowledged (replayed ones and
            ``duplicates`` included).
        retried: write attempts made again after a failure.
        duplicates: records found already stored when sent again.
        dropped: records refused because the queue was full (``on_full="drop"``).
        failed: records refused for good by the server (see ``on_error``),
            and unreadable lines of a spill file.
        spilled: records written to the spill file.
        replayed: records from a spill file that MongoDB acknowledged.
        last_error: the last error met while writing, if any.
    """

    accepted: int
    queued: int
    written: int
    retried: int
    duplicates: int
    dropped: int
    failed: int
    spilled: int
    replayed: int
    last_error: BaseException | None


class _FlushWaiter:
    __slots__ = ("future", "target", "unwritten")

    def __init__(self, target: int, future: asyncio.Future[None]) -> None:
        self.target = target
        self.future = future
        self.unwritten = 0


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
    return value


def _seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        least = "zero or more" if allow_zero else "more than zero"
        raise InvalidInput(f"{name} must be a finite number of seconds, {least}; got {value!r}")
    return float(value)


def _callback(name: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise InvalidInput(f"{name} must be a function or None, got {a_type(value)}")
    return value


class Recorder:
    """Record LLM client requests in the background.

    Example::

        async with Recorder(spill_path="/var/lib/app/llmreq.spill") as recorder:
            record_id = recorder.record(client, {"model": "gpt-4o"}, session_key="abc123")
            ...
            await recorder.flush()  # everything recorded so far is in MongoDB

    Start it after :func:`llmreq_mongo.init`: it writes to the database
    ``init`` set up.

    Args:
        max_batch: the most records sent in one ``insert_many``.
        flush_interval: seconds a record may wait for its batch to fill.
        max_queue: the most records held in memory; bounds its memory.
        on_full: what happens when ``max_queue`` records wait: ``"block"``
            (``arecord()`` waits for room; ``record()``, which cannot wait,
            raises ``RecorderFull``), ``"raise"`` (``RecorderFull``) or
            ``"drop"`` (the record is counted in ``stats.dropped``, logged,
            and passed to ``on_drop``).
        spill_path: a file for records MongoDB cannot take (see the module
            docstring); one recorder at a time per file.
        before_record: called with each payload before validation; returns
            the payload to store (to redact or enrich it).
        after_write: called with the ids of each acknowledged batch.
        on_drop: called with the document of each dropped record.
        on_error: called with the document and the ``RecordRejected`` error
            of each record the server refused for good.
        retry_deadline: seconds a batch is retried before it goes to the
            spill file (without one, it is retried until ``stop()``).
        stop_timeout: seconds ``stop()`` keeps trying to write what is left
            before spilling it or raising ``RecordsNotWritten``.

    Callbacks run on the event loop, in the writer task (``on_drop`` in the
    caller's); keep them quick. An exception in one is logged and ignored.
    """

    def __init__(
        self,
        *,
        max_batch: int = 500,
        flush_interval: float = 0.05,
        max_queue: int = 100_000,
        on_full: OnFull = "block",
        spill_path: str | os.PathLike[str] | None = None,
        before_record: Callable[[Any], Any] | None = None,
        after_write: Callable[[list[ObjectId]], object] | None = None,
        on_drop: Callable[[dict[str, Any]], object] | None = None,
        on_error: Callable[[dict[str, Any], RecordRejected], object] | None = None,
        retry_deadline: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._max_batch = _positive_int("max_batch", max_batch)
        self._max_queue = _positive_int("max_queue", max_queue)
        if self._max_batch > self._max_queue:
            raise InvalidInput(
                f"max_batch ({max_batch}) cannot exceed max_queue ({max_queue}): a batch "
                "is taken from the queue"
            )
        self._flush_interval = _seconds("flush_interval", flush_interval, allow_zero=True)
        if on_full not in ("block", "raise", "drop"):
            raise InvalidInput(f'on_full must be "block", "raise" or "drop", got {on_full!r}')
        self._on_full = on_full
        if spill_path is not None and not isinstance(spill_path, (str, os.PathLike)):
            raise InvalidInput(f"spill_path must be a file path or None, got {spill_path!r}")
        self._spill = Path(spill_path) if spill_path is not None else None
        if self._spill is not None and self._spill.is_dir():
            raise InvalidInput(f"spill_path {self._spill} is a directory; give a file path")
        self._before_record = _callback("before_record", before_record)
        self._after_write = _callback("after_write", after_write)
        self._on_drop = _callback("on_drop", on_drop)
        self._on_error = _callback("on_error", on_error)
        self._retry_deadline = _seconds("retry_deadline", retry_deadline)
        self._stop_timeout = _seconds("stop_timeout", stop_timeout)

        self._state = _NEW
        self._queue: deque[dict[str, Any]] = deque()
        self._inflight: list[dict[str, Any]] = []
        self._abandoned: list[dict[str, Any]] = []
        self._pending = 0  # accepted and not yet resolved: the queue and the batch in flight
        self._resolved = 0
        self._flush_waiters: list[_FlushWaiter] = []
        self._spill_waiting = False
        self._crash: BaseException | None = None
        self._clock_ms = -1
        self._clock = now_ms()
        self._task: asyncio.Task[None] | None = None
        self._delivery: Delivery | None = None
        self._tally = Tally()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> Recorder:
        """Start the writer task (and replay the spill file, if it holds records)."""
        if self._state == _RUNNING:
            return self
        if self._state != _NEW:
            raise RecorderClosed("a stopped recorder cannot start again; create a new Recorder")
        try:
            collection = LLMClientRequest.get_pymongo_collection()
        except Exception as exc:  # Beanie's CollectionWasNotInitialized, among others
            raise RecorderError(
                "the recorder writes to the database init() sets up: "
                "await llmreq_mongo.init(...) before starting it"
            ) from exc
        self._delivery = Delivery(
            collection,
            self._tally,
            retry_deadline=self._retry_deadline,
            spilling=self._spill is not None,
            after_write=self._after_write,
            on_error=self._on_error,
        )
        self._spill_waiting = self._spill is not None
        self._state = _RUNNING
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llmreq-recorder")
        return self

    async def stop(self) -> None:
        """Write what is queued, then stop.

        Records still unwritten after ``stop_timeout`` go to the spill file.

        Raises:
            RecordsNotWritten: records could be neither written nor spilled
                (no ``spill_path``, or the file could not be written).
        """
        if self._state == _NEW:
            self._state = _STOPPED
            return
        if self._state != _RUNNING or self._task is None or self._delivery is None:
            return
        self._state = _STOPPING
        self._delivery.stop_deadline = asyncio.get_running_loop().time() + self._stop_timeout
        self._delivery.stopping.set()
        self._wake.set()
        self._room.set()
        task = self._task
        done, _ = await asyncio.wait({task}, timeout=self._stop_timeout + _STOP_GRACE)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = [*self._abandoned, *self._inflight, *self._queue]
        self._abandoned, self._inflight = [], []
        self._queue.clear()
        self._state = _STOPPED
        error: RecordsNotWritten | None = None
        if left and not await self._spill_out(left):
            reason = "MongoDB did not acknowledge them before the stop timeout"
            if self._crash is not None:
                reason = f"the recorder's writer failed ({self._crash!r})"
            error = RecordsNotWritten(len(left), reason)
        self._resolve(left, set())
        for waiter in self._flush_waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)
        if error is not None:
            raise error

    async def __aenter__(self) -> Recorder:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the caller's side ------------------------------------------------------

    def record(
        self,
        llm_client: Any,
        request: Any,
        *,
        session_key: str | None = None,
        is_aggregation: bool = False,
    ) -> ObjectId:
        """Queue one request record and return its id at once (no I/O).

        Raises:
            InvalidInput: a field is refused, exactly as by ``objects.create``.
            RecorderFull: the queue is full and ``on_full`` is ``"raise"`` or
                ``"block"`` (use ``arecord()`` to wait for room).
            RecorderClosed: the recorder is not running.
        """
        document = self._build(llm_client, request, session_key, is_aggregation)
        if self._pending >= self._max_queue:
            return self._full(document)
        self._enqueue(document)
        record_id: ObjectId = document["_id"]
        return record_id

    async def arecord(
        self,
        llm_client: Any,
        request: Any,
        *,
        session_key: str | None = None,
        is_aggregation: bool = False,
    ) -> ObjectId:
        """Like :meth:`record`, but waits for room when full under ``on_full="block"``."""
        document = self._build(llm_client, request, session_key, is_aggregation)
        while self._pending >= self._max_queue:
            if self._on_full != "block":
                return self._full(document)
            self._room.clear()
            await self._room.wait()
            if self._state != _RUNNING:
                raise RecorderClosed("the recorder stopped while the record waited for room")
        self._enqueue(document)
        record_id: ObjectId = document["_id"]
        return record_id

    async def flush(self) -> None:
        """Return once every record accepted before the call is acknowledged.

        Raises:
            RecordsNotWritten: some of those records were spilled to disk or
                refused by the server (``stats`` and ``on_error`` tell which).
            RecorderClosed: the recorder is not running.
        """
        if self._state != _RUNNING:
            raise RecorderClosed("the recorder is not running; nothing can be flushed")
        target = self._tally.accepted
        if self._resolved >= target:
            return
        waiter = _FlushWaiter(target, asyncio.get_running_loop().create_future())
        self._flush_waiters.append(waiter)
        self._wake.set()
        try:
            await waiter.future
        finally:
            self._flush_waiters.remove(waiter)
        missing = waiter.unwritten + max(0, target - self._resolved)
        if missing:
            raise RecordsNotWritten(
                missing,
                "they went to the spill file or were refused by the server",
                advice="recorder.stats counts them; on_error receives refused records",
            )

    @property
    def stats(self) -> RecorderStats:
        """What the recorder has done so far (a snapshot)."""
        return RecorderStats(
            accepted=self._tally.accepted,
            queued=self._pending,
            written=self._tally.written,
            retried=self._tally.retried,
            duplicates=self._tally.duplicates,
            dropped=self._tally.dropped,
            failed=self._tally.failed,
            spilled=self._tally.spilled,
            replayed=self._tally.replayed,
            last_error=self._tally.last_error,
        )

    def _build(
        self, llm_client: Any, request: Any, session_key: Any, is_aggregation: Any
    ) -> dict[str, Any]:
        if self._state != _RUNNING:
            raise RecorderClosed(
                "the recorder is not running: start it (async with Recorder(...)) first"
                if self._state == _NEW
                else "the recorder is stopped; records can no longer be accepted"
            )
        if self._crash is not None:
            raise RecorderClosed(f"the recorder's writer failed ({self._crash!r}); stop it")
        if self._before_record is not None:
            request = self._before_record(request)
        checked = validate_request(
            llm_client, request, session_key, is_aggregation, client_model=LLMClient
        )
        return request_document(checked, record_id=ObjectId(), now=self._now())

    def _now(self) -> dt.datetime:
        """``now_ms()``, built once per millisecond: a burst of records shares it."""
        ms = time.time_ns() // 1_000_000  # the clock datetime.now() reads
        if ms != self._clock_ms:
            self._clock_ms = ms
            self._clock = _EPOCH + dt.timedelta(milliseconds=ms)
        return self._clock

    def _enqueue(self, document: dict[str, Any]) -> None:
        queue = self._queue
        queue.append(document)
        self._pending += 1
        self._tally.accepted += 1
        if len(queue) == 1 or len(queue) >= self._max_batch:
            self._wake.set()

    def _full(self, document: dict[str, Any]) -> ObjectId:
        record_id: ObjectId = document["_id"]
        if self._on_full == "drop":
            self._tally.dropped += 1
            if math.log10(self._tally.dropped).is_integer():  # 1, 10, 100...: bounded logging
                _log.warning(
                    "the recorder's queue is full (%d records); %d record(s) dropped so far",
                    self._max_queue,
                    self._tally.dropped,
                )
            call_back(self._on_drop, "on_drop", document)
            return record_id
        hint = (
            "await recorder.arecord(...) waits for room"
            if self._on_full == "block"
            else "raise max_queue, or use on_full='block' and arecord() to wait for room"
        )
        raise RecorderFull(
            f"the recorder's queue holds {self._max_queue} records (max_queue) and the record "
            f"was not accepted; {hint}"
        )

    # -- the writer task ----------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._replay()
            while True:
                batch = await self._next_batch()
                if not batch:
                    return
                await self._write_queued(batch)
                if self._spill_waiting and self._state == _RUNNING and not self._is_offline():
                    await self._replay()
        except Exception as exc:
            # A bug, not a MongoDB failure: stop() spills or reports what is left.
            _log.exception("the recorder's writer failed; stop() will spill or report the rest")
            self._crash = self._tally.last_error = exc

    async def _next_batch(self) -> list[dict[str, Any]]:
        queue = self._queue
        while not queue:
            if self._state != _RUNNING:
                return []
            self._wake.clear()
            await self._wake.wait()
        if len(queue) < self._max_batch and self._state == _RUNNING and not self._flush_waiters:
            self._wake.clear()
            timer = asyncio.get_running_loop().call_later(self._flush_interval, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
        count = min(len(queue), self._max_batch)
        return [queue.popleft() for _ in range(count)]

    async def _write_queued(self, batch: list[dict[str, Any]]) -> None:
        self._inflight = batch
        written, left = await self._send(batch, may_give_up=self._spill is not None)
        if left and not await self._spill_out(left):
            if self._state == _RUNNING:
                # No file to take them: keep trying, until stop() if need be.
                more, left = await self._send(left, may_give_up=False)
                written.extend(more)
            if left:
                # Stopping, past the stop deadline: stop() reports these and the rest.
                self._abandoned = left + list(self._queue)
                self._queue.clear()
                given_up = {doc["_id"] for doc in left}
                batch = [doc for doc in batch if doc["_id"] not in given_up]
        self._inflight = []
        self._resolve(batch, set(written))

    def _resolve(self, batch: list[dict[str, Any]], written: set[ObjectId]) -> None:
        start = self._resolved
        self._resolved += len(batch)
        self._pending -= len(batch)
        self._room.set()
        if not self._flush_waiters:
            return
        missed = [start + i for i, doc in enumerate(batch) if doc["_id"] not in written]
        for waiter in self._flush_waiters:
            waiter.unwritten += sum(1 for seq in missed if seq < waiter.target)
            if self._resolved >= waiter.target and not waiter.future.done():
                waiter.future.set_result(None)

    async def _send(
        self, docs: list[dict[str, Any]], *, may_give_up: bool
    ) -> tuple[list[ObjectId], list[dict[str, Any]]]:
        if self._delivery is None:  # start() makes it before the writer runs
            raise RecorderClosed("the recorder was never started")
        return await self._delivery.deliver(docs, may_give_up=may_give_up)

    def _is_offline(self) -> bool:
        return self._delivery is not None and self._delivery.offline

    async def _spill_out(self, docs: list[dict[str, Any]]) -> bool:
        """Append ``docs`` to the spill file; False without one or when it fails."""
        if self._spill is None:
            return False
        try:
            count = await asyncio.to_thread(spill.append_records, self._spill, docs)
        except OSError as exc:
            self._tally.last_error = exc
            _log.error("could not write %d record(s) to %s: %s", len(docs), self._spill, exc)
            return False
        self._tally.spilled += count
        self._spill_waiting = True
        _log.warning("%d record(s) went to the spill file %s", count, self._spill)
        return True

    async def _replay(self) -> None:
        """Send the spill file's records; remove the file once all are acknowledged."""
        path = self._spill
        if path is None or not self._spill_waiting:
            return
        if not await asyncio.to_thread(spill.has_records, path):
            self._spill_waiting = False
            return
        reader = await asyncio.to_thread(spill.SpillReader, path)
        try:
            while True:
                docs = await asyncio.to_thread(reader.read, self._max_batch)
                if not docs:
                    break
                written, left = await self._send(docs, may_give_up=True)
                self._tally.replayed += len(written)
                if left:
                    return  # MongoDB went away again; the file keeps them all
        finally:
            reader.close()
            self._tally.failed += reader.corrupt
        await asyncio.to_thread(spill.remove, path)
        self._spill_waiting = False
        _log.info("the spill file %s was replayed and removed", path)

    def __repr__(self) -> str:
        return f"Recorder({self._state}, queued={self._pending}, written={self._tally.written})"
