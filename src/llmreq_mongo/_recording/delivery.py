"""Sending batches of records to MongoDB until they are acknowledged.

One :class:`Delivery` belongs to one recorder. ``deliver()`` sends a batch
with ``insert_many(ordered=False)`` and sorts out what came back:

- a duplicate-key error on ``_id`` means an earlier attempt stored the
  record: it counts as written;
- a write-concern error means the writes may not be durable: everything not
  refused is sent again (and then comes back as duplicates);
- any other per-document error refuses that record for good
  (:class:`~llmreq_mongo.errors.RecordRejected`, logged and passed to
  ``on_error``), unless its code is one of the transient ones;
- an error for the whole batch (network, not-primary, timeout, a closed
  client...) is retried with exponential back-off and jitter until the
  deadline; past it the caller spills or keeps the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import bson
from bson import ObjectId
from pymongo.errors import BulkWriteError, NetworkTimeout, PyMongoError

from llmreq_mongo._documents import verify_clients
from llmreq_mongo.errors import RecordRejected, StorageError

from .queued import Doc, plain

__all__ = ["Delivery", "Tally", "call_back"]

_log = logging.getLogger("llmreq_mongo.recorder")

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
# Once a batch has gone to the spill file, MongoDB is tried again at most this
# often; the records in between go straight to the file.
_PROBE_INTERVAL = 1.0
_PROBE_TIMEOUT = 1.0
_DUPLICATE_KEY = 11000
# Per-document write errors that a later attempt can get past (network,
# not-primary, shutdown and interruption classes).
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


class Tally:
    """The counters behind :class:`~llmreq_mongo.RecorderStats`."""

    __slots__ = (
        "accepted",
        "dropped",
        "duplicates",
        "failed",
        "housekeeping_errors",
        "last_error",
        "replayed",
        "retried",
        "spilled",
        "unwritten",
        "written",
    )

    def __init__(self) -> None:
        self.accepted = self.written = self.retried = self.duplicates = 0
        self.dropped = self.failed = self.spilled = self.replayed = 0
        self.housekeeping_errors = self.unwritten = 0
        self.last_error: BaseException | None = None


def call_back(callback: Callable[..., object] | None, name: str, *args: Any) -> None:
    """Call an application callback; an exception in it is logged, never raised."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:
        _log.exception("the recorder's %s callback failed", name)


_T = TypeVar("_T")


def _is_id_duplicate(error: Mapping[str, Any]) -> bool:
    if error.get("code") != _DUPLICATE_KEY:
        return False
    pattern = error.get("keyPattern")
    if pattern is not None:
        return list(pattern) == ["_id"]
    return " index: _id_ " in str(error.get("errmsg", ""))


if sys.version_info >= (3, 11):

    async def _within(seconds: float, awaitable: Awaitable[_T]) -> _T:
        """``awaitable``'s result, or ``TimeoutError`` after ``seconds``.

        ``asyncio.wait_for`` runs the awaitable in a task of its own (before
        Python 3.12), which costs more than the write of a small batch takes
        the client; ``asyncio.timeout`` runs it in the writer's task.
        """
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # Python 3.10

    async def _within(seconds: float, awaitable: Awaitable[_T]) -> _T:
        """``awaitable``'s result, or ``TimeoutError`` after ``seconds``."""
        return await asyncio.wait_for(awaitable, seconds)


def _clients_of(docs: Sequence[Doc]) -> set[ObjectId]:
    """The client ids of ``docs``.

    A run of records of one client shares one id object (``client_ref``
    hands out the same ObjectId for the same client), told apart by
    identity: an ObjectId's hash is a Python call, and a batch holds a few
    clients, not one per record.
    """
    clients: set[ObjectId] = set()
    last = None
    for doc in docs:
        client_id = doc["llm_client_id"]
        if client_id is not last:
            clients.add(client_id)
            last = client_id
    return clients


class Delivery:
    """Write batches to one collection, retrying until acknowledged or a deadline.

    Attributes:
        offline: a batch was given up on; until a probe succeeds, batches
            are tried at most once a second and otherwise handed back at once.
        stopping: set when the recorder stops; ends back-off waits early.
        stop_deadline: the loop time after which nothing is retried.
    """

    def __init__(
        self,
        collection: Any,
        tally: Tally,
        *,
        retry_deadline: float,
        spilling: bool,
        after_write: Callable[[list[ObjectId]], object] | None,
        on_error: Callable[[dict[str, Any], RecordRejected], object] | None,
    ) -> None:
        self.tally = tally
        self.offline = False
        self.next_probe = 0.0
        self.stopping = asyncio.Event()
        self.stop_deadline = math.inf
        self._collection = collection
        self._retry_deadline = retry_deadline
        self._spilling = spilling
        self._after_write = after_write
        self._on_error = on_error

    async def deliver(
        self, docs: Sequence[Doc], *, may_give_up: bool
    ) -> tuple[list[ObjectId], list[Doc]]:
        """Send ``docs`` until acknowledged or given up: (written ids, docs left)."""
        written: list[ObjectId] = []
        try:
            remaining = await self._attempts(docs, written, may_give_up=may_give_up)
            if written:
                await self._drop_orphans(docs, written)
        finally:
            if written:
                self.tally.written += len(written)
                call_back(self._after_write, "after_write", written)
        return written, remaining

    async def _drop_orphans(self, docs: Sequence[Doc], written: list[ObjectId]) -> None:
        """Take out of ``written`` the records whose client was deleted meanwhile.

        ``verify_clients`` has already deleted them from MongoDB; each goes to
        ``on_error``. A failed check is logged and counted: the client's own
        delete sweeps again after its window, so no record is left behind.
        """
        # All of them written (the common case): no per-record set to build.
        stored = None if len(written) == len(docs) else set(written)
        clients = _clients_of(docs if stored is None else [d for d in docs if d["_id"] in stored])
        try:
            gone = await verify_clients(clients)
        except StorageError as exc:
            self.tally.housekeeping_errors += 1
            _log.warning("could not check that the clients of a batch still exist: %s", exc)
            return
        if not gone:
            return
        if stored is None:
            stored = set(written)
        for doc in docs:
            if doc["_id"] in stored and doc["llm_client_id"] in gone:
                stored.discard(doc["_id"])
                self.tally.failed += 1
                error = RecordRejected(
                    doc["_id"], 0, f"its client LLMClient(id={doc['llm_client_id']}) was deleted"
                )
                if self._on_error is not None:
                    call_back(self._on_error, "on_error", plain(doc), error)
        written[:] = [record_id for record_id in written if record_id in stored]

    async def _attempts(
        self, docs: Sequence[Doc], written: list[ObjectId], *, may_give_up: bool
    ) -> list[Doc]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        give_up_at = started + self._retry_deadline if may_give_up else math.inf
        remaining = list(docs)
        attempt = 0
        late = False
        while True:
            now = loop.time()
            deadline = min(give_up_at, self.stop_deadline)
            if self.offline and may_give_up:
                if now < self.next_probe:
                    return remaining
                deadline = min(deadline, now + _PROBE_TIMEOUT)
            timeout = max(min(deadline - now, self._retry_deadline), 0.001)
            error: PyMongoError
            try:
                # Not pymongo.timeout(): under it the driver retries on its own,
                # at once and without back-off, until the time is up.
                await _within(timeout, self._collection.insert_many(remaining, ordered=False))
            except asyncio.TimeoutError:
                error = NetworkTimeout(f"MongoDB did not reply in {timeout:.1f} s")
            except BulkWriteError as exc:
                remaining = self._sort_out(exc, remaining, written)
                if not remaining:
                    break
                error = exc
            except PyMongoError as exc:
                error = exc
            except Exception as exc:  # never the writer's end
                # Not the server: a record the driver cannot encode. It fails
                # alone; the rest of the batch is sent again at once.
                kept = self._set_aside_unencodable(remaining)
                if len(kept) < len(remaining):
                    remaining = kept
                    if not remaining:
                        break
                    continue
                error = PyMongoError(f"the batch could not be sent: {exc!r}")
            else:
                written.extend(doc["_id"] for doc in remaining)
                remaining = []
                break
            self.tally.last_error = error
            attempt += 1
            now = loop.time()
            if now >= deadline:
                if self.offline:
                    self.next_probe = now + _PROBE_INTERVAL
                    return remaining
                _log.error(
                    "MongoDB did not take %d record(s) in %.1f s (%r); %s",
                    len(remaining),
                    now - started,
                    error,
                    "spilling them" if self._spilling else "giving up at stop",
                )
                self.offline = self._spilling
                self.next_probe = now + _PROBE_INTERVAL
                return remaining
            if attempt == 1:
                _log.warning("writing %d record(s) failed (%r); retrying", len(remaining), error)
            elif not late and now - started >= self._retry_deadline:
                late = True
                _log.error(
                    "MongoDB has not taken %d record(s) for %.1f s (%r); they wait in memory %s",
                    len(remaining),
                    now - started,
                    error,
                    "because the spill file could not take them either (see its error)"
                    if self._spilling
                    else "(set spill_path to keep them on disk instead)",
                )
            self.tally.retried += 1
            await self._back_off(attempt, deadline)
        if self.offline:
            _log.warning("MongoDB takes records again")
            self.offline = False
        return remaining

    def _sort_out(self, exc: BulkWriteError, docs: list[Doc], written: list[ObjectId]) -> list[Doc]:
        """Account for a partly failed batch; return the records to send again."""
        details: Mapping[str, Any] = exc.details or {}
        errors_by_index = {err["index"]: err for err in details.get("writeErrors", [])}
        unconfirmed = bool(details.get("writeConcernErrors"))
        retry: list[Doc] = []
        for index, doc in enumerate(docs):
            err = errors_by_index.get(index)
            if err is None or _is_id_duplicate(err):
                if unconfirmed:
                    retry.append(doc)  # stored, maybe not durably: send again
                else:
                    written.append(doc["_id"])
                    self.tally.duplicates += err is not None
            elif err.get("code") in _TRANSIENT_CODES:
                retry.append(doc)
            else:
                self._reject(doc, err)
        return retry

    def _set_aside_unencodable(self, docs: list[Doc]) -> list[Doc]:
        """Fail the records BSON cannot encode; return the others."""
        kept: list[Doc] = []
        for doc in docs:
            try:
                bson.encode(doc)
            except Exception as exc:  # whatever the encoder raises
                self._reject(doc, {"code": 0, "errmsg": f"it cannot be encoded as BSON: {exc!r}"})
            else:
                kept.append(doc)
        return kept

    def _reject(self, doc: Doc, err: dict[str, Any]) -> None:
        self.tally.failed += 1
        error = RecordRejected(doc["_id"], int(err.get("code", 0)), str(err.get("errmsg", "")))
        self.tally.last_error = error
        _log.error("%s", error)
        if self._on_error is not None:
            call_back(self._on_error, "on_error", plain(doc), error)

    async def _back_off(self, attempt: int, deadline: float) -> None:
        delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1))
        delay = delay / 2 + random.uniform(0, delay / 2)
        delay = min(delay, max(deadline - asyncio.get_running_loop().time(), 0))
        if not self.stopping.is_set():
            # stop() ends the wait early, so that its own deadline applies at once
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
        else:
            await asyncio.sleep(delay)
