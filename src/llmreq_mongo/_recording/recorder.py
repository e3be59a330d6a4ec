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
- a record the server refuses for good (a validator, say), or that cannot be
  encoded, fails alone: it is logged and passed to ``on_error``, and the rest
  of its batch is written;
- when MongoDB stays unreachable past ``retry_deadline``, or at ``stop()``,
  records go to the spill file (:mod:`.spill`), replayed as soon as MongoDB
  answers (by this recorder, idle or not, or by the next one with the same
  ``spill_path``). Without a spill file the records wait in memory, bounded
  by ``max_queue`` and ``max_queue_bytes``, and ``stop()`` raises
  :class:`~llmreq_mongo.errors.RecordsNotWritten` with the number it could
  not write. Under ``spill="always"`` every record also goes to the file
  before it is sent (:mod:`.journal`).

Each record is queued encoded, as the BSON bytes that are sent
(:mod:`.queued`): one immutable snapshot per record, and what
``max_queue_bytes`` counts.

This module owns the life cycle and the caller's side; the queue and the
writer loop live in :mod:`.writer`, sending a batch in :mod:`.delivery`,
the spill file in :mod:`.spill`, :mod:`.spill_lock` and :mod:`.spill_store`, the
options and the stats in :mod:`.options`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from bson import ObjectId

from llmreq_mongo._capture import LLMResponse
from llmreq_mongo._documents import (
    LLMClient,
    LLMClientRequest,
    ValidatedRequest,
    new_record_id,
    validate_request,
)
from llmreq_mongo._queries import forget_vouched
from llmreq_mongo._time import now_ms
from llmreq_mongo._types import SavedClient
from llmreq_mongo.errors import (
    InvalidInput,
    LLMReqError,
    RecorderClosed,
    RecorderError,
    RecordRejected,
    RecordsNotWritten,
)

from .call import OpenCalls, RecordedCall
from .delivery import Delivery, Tally
from .journal import Journal
from .options import (
    DEFAULT_MAX_QUEUE_BYTES,
    OnFull,
    RecorderStats,
    SpillMode,
    check_options,
    snapshot,
)
from .queued import QueuedRecord, queued_record
from .spill_store import SpillStore
from .writer import Writer

__all__ = ["OnFull", "Recorder", "RecorderStats", "SpillMode"]

_log = logging.getLogger("llmreq_mongo.recorder")

# stop() gives the writer this much longer than stop_timeout to finish the
# attempt it is in before cancelling it.
_STOP_GRACE = 5.0
# When the block of ``async with`` was interrupted (Ctrl-C, a cancelled task),
# stop() tries MongoDB for at most this long before spilling the rest.
_INTERRUPTED_STOP = 1.0
_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"


class Recorder:
    """Record LLM client requests in the background.

    Example::

        async with Recorder(spill_path="/var/lib/app/llmreq-{pid}.spill") as recorder:
            record_id = recorder.record(client, {"model": "gpt-4o"}, session_key="abc123")
            ...
            await recorder.flush()  # everything recorded so far is in MongoDB

    Start it after :func:`llmreq_mongo.init`: it writes to the database
    ``init`` set up.

    Args:
        max_batch: the most records sent in one ``insert_many`` (never more
            than ``max_queue``).
        flush_interval: seconds a record may wait for its batch to fill
            (half a second by default: at the rates of a web server, one
            ``insert_many`` per half second costs the client a fraction of
            one per call; ``flush()`` and ``stop()`` never wait for it).
        max_queue: the most records held in memory.
        max_queue_bytes: the most bytes of records held in memory (their
            encoded size; 256 MiB by default). A record that would pass it
            waits as one past ``max_queue`` does, unless the queue is empty.
        on_full: what happens when ``max_queue`` records (or
            ``max_queue_bytes``) wait: ``"block"``
            (``arecord()`` waits for room; ``record()``, which cannot wait,
            raises ``RecorderFull``), ``"raise"`` (``RecorderFull``) or
            ``"drop"`` (the record is counted in ``stats.dropped``, logged,
            and passed to ``on_drop``).
        spill_path: a file for records MongoDB cannot take (see the module
            docstring); one recorder at a time per file (``SpillFileInUse``
            otherwise). ``{pid}`` in it becomes the process id.
        spill: ``"on_failure"`` writes to the spill file only what MongoDB
            cannot take; ``"always"`` appends and fsyncs every record to it
            before sending (write-ahead), so a crash loses nothing that
            reached the disk; it needs ``spill_path``.
        before_record: called with each payload before validation; returns
            the payload to store (to redact or enrich it).
        after_write: called with the ids of each acknowledged batch.
        on_drop: called with the document of each dropped record.
        on_error: called with the document and the ``RecordRejected`` error
            of each record refused for good.
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
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        on_full: OnFull = "block",
        spill_path: str | os.PathLike[str] | None = None,
        spill: SpillMode = "on_failure",
        before_record: Callable[[Any], Any] | None = None,
        after_write: Callable[[list[ObjectId]], object] | None = None,
        on_drop: Callable[[dict[str, Any]], object] | None = None,
        on_error: Callable[[dict[str, Any], RecordRejected], object] | None = None,
        retry_deadline: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._options = options = check_options(
            max_batch=max_batch,
            flush_interval=flush_interval,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            on_full=on_full,
            spill_path=spill_path,
            spill=spill,
            before_record=before_record,
            after_write=after_write,
            on_drop=on_drop,
            on_error=on_error,
            retry_deadline=retry_deadline,
            stop_timeout=stop_timeout,
        )
        self._state = _NEW
        self._crash: BaseException | None = None
        self._warned_none = False  # before_record returned None once: logged
        self._task: asyncio.Task[None] | None = None
        self._journal_task: asyncio.Task[None] | None = None
        self._journal_wake = asyncio.Event()
        self._tally = Tally()
        self._writer = Writer(options, self._tally)
        self._calls = OpenCalls(self._admit_call, self._wait_for_room)

    # -- life cycle -----------------------------------------------------------

    async def start(self) -> Recorder:
        """Start the writer task (and replay the spill file, if it holds records).

        Raises:
            RecorderError: ``init()`` was not called first.
            InvalidInput: the spill file's directory does not exist.
            SpillFileInUse: another recorder holds the spill file.
            SpillFileMismatch: the spill file belongs to another database.
        """
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
        options, writer = self._options, self._writer
        if options.spill_path is not None:
            namespace = f"{collection.database.name}.{collection.name}"
            store = SpillStore(
                options.spill_path, self._tally, namespace=namespace, batch=writer.batch_size
            )
            await store.open()
            writer.store = store
            if options.spill == "always":
                writer.journal = Journal(store, batch=writer.batch_size)
        writer.delivery = Delivery(
            collection,
            self._tally,
            retry_deadline=options.retry_deadline,
            spilling=options.spill_path is not None,
            after_write=options.after_write,
            on_error=options.on_error,
        )
        self._state = _RUNNING
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="llmreq-recorder")
        if writer.journal is not None:
            self._journal_task = loop.create_task(
                writer.journal.run(self._journal_wake), name="llmreq-recorder-journal"
            )
        return self

    async def stop(self) -> None:
        """Write what is queued, then stop.

        Records still unwritten after ``stop_timeout`` go to the spill file
        (which is replayed first, when MongoDB answers).

        Raises:
            RecordsNotWritten: records could be neither written nor spilled
                (no ``spill_path``, or the file could not be written).
        """
        await self._stop(self._options.stop_timeout)

    async def _stop(self, timeout: float) -> None:
        writer = self._writer
        if self._state == _NEW:
            self._state = _STOPPED
            return
        if self._state != _RUNNING or self._task is None or writer.delivery is None:
            return
        self._calls.close_all()  # calls still open are recorded as they stand
        self._state = _STOPPING
        writer.running = False
        writer.delivery.stop_deadline = asyncio.get_running_loop().time() + timeout
        writer.delivery.stopping.set()
        writer.wake.set()
        writer.room.set()
        task = self._task
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout + _STOP_GRACE)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self._finish()

    async def _finish(self) -> None:
        if self._journal_task is not None:
            self._journal_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._journal_task
        self._state = _STOPPED
        await self._writer.finish(self._crash)

    async def __aenter__(self) -> Recorder:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.stop()
            return
        # The block raised: its exception is the one that propagates. What
        # could not be written goes to the log and the stats instead.
        interrupted = not isinstance(exc, Exception)  # KeyboardInterrupt, CancelledError
        timeout = min(self._options.stop_timeout, _INTERRUPTED_STOP) if interrupted else None
        try:
            await self._stop(self._options.stop_timeout if timeout is None else timeout)
        except LLMReqError as error:
            _log.error("the recorder stopped after %r with records unwritten: %s", exc, error)
        except asyncio.CancelledError:
            _log.error("the recorder's stop after %r was cancelled", exc)

    # -- the caller's side ------------------------------------------------------

    def record(
        self,
        llm_client: SavedClient,
        request: Any,
        *,
        session_key: str | None = None,
        is_aggregation: bool = False,
        created_at: dt.datetime | None = None,
        updated_at: dt.datetime | None = None,
        response: LLMResponse | Mapping[str, Any] | None = None,
    ) -> ObjectId:
        """Queue one request record and return its id at once (no I/O).

        ``created_at`` backfills a record, as in ``objects.create``: an aware
        datetime, kept to the millisecond, with ``updated_at`` the same unless
        given. By default both are the time of the call.

        ``response`` is what came back (an :class:`~llmreq_mongo.LLMResponse`
        or a dict of its fields), stored in the same document: a call is
        written once, with its response. Its body is checked as ``request``
        is.

        Raises:
            InvalidInput: a field is refused, exactly as by ``objects.create``.
            RecorderFull: the queue is full and ``on_full`` is ``"raise"`` or
                ``"block"`` (use ``arecord()`` to wait for room).
            RecorderClosed: the recorder is not running.
        """
        document = self._build(
            llm_client, request, session_key, is_aggregation, created_at, updated_at, response
        )
        if not self._writer.has_room(document.size):
            return self._writer.full(document)
        self._enqueue(document)
        return document.record_id

    async def arecord(
        self,
        llm_client: SavedClient,
        request: Any,
        *,
        session_key: str | None = None,
        is_aggregation: bool = False,
        created_at: dt.datetime | None = None,
        updated_at: dt.datetime | None = None,
        response: LLMResponse | Mapping[str, Any] | None = None,
    ) -> ObjectId:
        """Like :meth:`record`, but waits for room when full under ``on_full="block"``.

        Under ``spill="always"`` it also returns only once the record is on
        disk (unless the spill file cannot be written, which is logged).
        """
        document = self._build(
            llm_client, request, session_key, is_aggregation, created_at, updated_at, response
        )
        writer = self._writer
        while not writer.has_room(document.size):
            if self._options.on_full != "block":
                return self._writer.full(document)
            writer.room.clear()
            await writer.room.wait()
            if self._state != _RUNNING:
                raise RecorderClosed("the recorder stopped while the record waited for room")
        self._enqueue(document)
        if writer.journal is not None:
            await writer.journal.write()
        return document.record_id

    async def flush(self) -> None:
        """Return once every record accepted before the call is acknowledged.

        Raises:
            RecordsNotWritten: some record accepted before the call is not
                acknowledged: spilled to disk (now or earlier, and not
                replayed since) or refused (``stats`` and ``on_error`` tell which).
            RecorderClosed: the recorder is not running.
        """
        if self._state != _RUNNING:
            raise RecorderClosed("the recorder is not running; nothing can be flushed")
        writer = self._writer
        target = self._tally.accepted
        if writer.resolved < target:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (target, future)
            writer.flush_waiters.append(entry)
            writer.wake.set()
            try:
                await future
            finally:
                writer.flush_waiters.remove(entry)
        missing = writer.unwritten_before(target) + max(0, target - writer.resolved)
        if missing:
            raise RecordsNotWritten(
                missing,
                "they went to the spill file or were refused by the server",
                advice="recorder.stats counts them; on_error receives refused records",
            )

    def call(
        self,
        llm_client: SavedClient,
        request: Any,
        *,
        session_key: str | None = None,
        is_aggregation: bool = False,
    ) -> RecordedCall:
        """Record a call whose response comes later: ``async with recorder.call(...) as call:``.

        The request is checked now, exactly as by :meth:`record`;
        ``created_at`` is now, and so is the start of ``latency_ms``. The
        record is queued, with what ``call`` was given, when the block ends
        (see :class:`~llmreq_mongo.RecordedCall`).

        Raises:
            InvalidInput: a field is refused, exactly as by ``objects.create``.
            RecorderClosed: the recorder is not running.
        """
        # A fresh copy of the payload: the caller may change it while the call runs.
        checked = self._check(llm_client, request, session_key, is_aggregation, copy=True)
        return self._calls.open(checked, new_record_id(), now_ms())

    async def _wait_for_room(self, size: int) -> None:
        """What ``arecord()`` does for an ended call: wait for room under ``on_full="block"``."""
        writer, options = self._writer, self._options
        while options.on_full == "block" and not writer.has_room(size) and self._state == _RUNNING:
            writer.room.clear()
            await writer.room.wait()

    def _admit_call(self, document: QueuedRecord, force: bool) -> None:
        """Queue an ended call's record; when full, ``on_full`` decides unless ``force``."""
        if not self._writer.has_room(document.size) and (
            not force or self._options.on_full == "drop"
        ):
            self._writer.full(document)
            return
        self._enqueue(document)

    @property
    def stats(self) -> RecorderStats:
        """What the recorder has done so far (a snapshot)."""
        return snapshot(
            self._tally, queued=self._writer.pending, queued_bytes=self._writer.pending_bytes
        )

    def _build(
        self,
        llm_client: Any,
        request: Any,
        session_key: Any,
        is_aggregation: Any,
        created_at: Any = None,
        updated_at: Any = None,
        response: Any = None,
    ) -> QueuedRecord:
        checked = self._check(
            llm_client,
            request,
            session_key,
            is_aggregation,
            created_at,
            updated_at,
            response,
            copy=False,  # encoded at once: the encoding is the snapshot
        )
        return queued_record(checked, new_record_id(), now_ms())

    def _check(
        self,
        llm_client: Any,
        request: Any,
        session_key: Any,
        is_aggregation: Any,
        created_at: Any = None,
        updated_at: Any = None,
        response: Any = None,
        *,
        copy: bool,
    ) -> ValidatedRequest:
        """Check one record's fields on the caller's path, as ``objects.create`` does."""
        if self._state != _RUNNING:
            raise RecorderClosed(
                "the recorder is not running: start it (async with Recorder(...)) first"
                if self._state == _NEW
                else "the recorder is stopped; records can no longer be accepted"
            )
        if self._crash is not None:
            raise RecorderClosed(f"the recorder's writer failed ({self._crash!r}); stop it")
        if self._options.before_record is not None:
            forget_vouched()  # the hook may change the payload in place
            request = self._before_record(self._options.before_record, request)
        return validate_request(
            llm_client,
            request,
            session_key,
            is_aggregation,
            client_model=LLMClient,
            created_at=created_at,
            updated_at=updated_at,
            response=response,
            fit=False,  # encode_request checks what fits
            copy=copy,
        )

    def _before_record(self, hook: Callable[[Any], Any], request: Any) -> Any:
        """``hook(request)``; a hook that raises refuses the record.

        The hook redacts or enriches the payload, so a record it failed on is
        not kept as it was: that could store what the hook was there to
        remove. A hook returning None for a payload is most often one that
        forgot its ``return``: it is stored as None, as asked, and logged once.

        Raises:
            InvalidInput: the hook raised (its exception is the cause).
        """
        try:
            changed = hook(request)
        except Exception as exc:
            raise InvalidInput(
                f"before_record raised {exc!r}, so the record was not accepted (it is "
                "never stored without the change the hook makes); fix the hook"
            ) from exc
        if changed is None and request is not None and not self._warned_none:
            self._warned_none = True
            _log.warning(
                "before_record returned None for a payload, so the record stores "
                "request=None; return the payload from before_record to keep it"
            )
        return changed

    def _enqueue(self, document: QueuedRecord) -> None:
        writer = self._writer
        queue = writer.queue
        queue.append(document)
        writer.pending += 1
        writer.pending_bytes += document.size
        self._tally.accepted += 1
        if writer.journal is not None:
            writer.journal.add(document)
            self._journal_wake.set()
        if len(queue) == 1 or len(queue) >= writer.batch_size:
            writer.wake.set()

    # -- the background tasks ---------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._writer.run()
        except Exception as exc:
            # A bug, not a MongoDB failure: stop() spills or reports what is left.
            _log.exception("the recorder's writer failed; stop() will spill or report the rest")
            self._crash = self._tally.last_error = exc

    def __repr__(self) -> str:
        return (
            f"Recorder({self._state}, queued={self._writer.pending}, written={self._tally.written})"
        )
