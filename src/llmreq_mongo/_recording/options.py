"""The options of a :class:`~llmreq_mongo.Recorder`, checked once when it is built, and its stats.

Every option goes through one of a few checks here, so a misspelt or
out-of-range value is refused with the same kind of message whatever the
option, and the rule that ``True`` is not a number is written once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from bson import ObjectId

from llmreq_mongo._checks import check_callback, check_choice, check_int, check_seconds
from llmreq_mongo.errors import InvalidInput, RecordRejected

from .delivery import Tally

__all__ = [
    "DEFAULT_MAX_QUEUE_BYTES",
    "OnFull",
    "RecorderOptions",
    "RecorderStats",
    "SpillMode",
    "check_options",
    "snapshot",
]

#: What ``record()`` does when ``max_queue`` records are waiting.
OnFull = Literal["block", "raise", "drop"]
#: When records go to the spill file: only when MongoDB cannot take them, or
#: every batch before it is sent (write-ahead).
SpillMode = Literal["on_failure", "always"]

_T = TypeVar("_T")

#: The default bound on the bytes of records a recorder holds in memory.
#: ``max_queue`` alone counts records, and records vary a thousandfold in
#: size: 100,000 of them (its default) with 100 KB prompts would be 10 GB.
#: 256 MiB holds the default 100,000 records of a chat request with a 2 KB
#: response each (about 2.5 KB encoded), so for the common case
#: ``max_queue`` is still the bound that applies first, and a burst of
#: large payloads is stopped at a size a service can afford. Queued records
#: are held as their encoded bytes, so this is close to the memory they take.
DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class RecorderStats:
    """A snapshot of what a :class:`Recorder` has done so far.

    Attributes:
        accepted: records ``record()``/``arecord()`` accepted.
        queued: accepted records not yet written, spilled or failed (in
            memory, the batch being written included).
        queued_bytes: the encoded size of the ``queued`` records, which
            ``max_queue_bytes`` bounds.
        written: records MongoDB acknowledged (replayed ones and
            ``duplicates`` included).
        retried: write attempts made again after a failure.
        duplicates: records found already stored when sent again.
        dropped: records refused because the queue was full, by
            ``max_queue`` or ``max_queue_bytes`` (``on_full="drop"``).
        failed: records refused for good by the server or that cannot be
            encoded (see ``on_error``), and unreadable lines of a spill file.
        spilled: records written to the spill file because MongoDB could not
            take them (the write-ahead copies of ``spill="always"`` are not
            counted).
        replayed: records from a spill file that MongoDB acknowledged.
        last_error: the last error met while writing, if any.
        housekeeping_errors: spill-file chores that failed (a lock file, a
            ``.corrupt`` file or a removal that could not be written); each
            is logged and recording goes on.
        unwritten: records the recorder stopped with that were neither
            written nor spilled (reported by ``stop()`` and the log).
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
    housekeeping_errors: int = 0
    unwritten: int = 0
    queued_bytes: int = 0


def snapshot(tally: Tally, *, queued: int, queued_bytes: int = 0) -> RecorderStats:
    """The stats of a recorder from its counters."""
    return RecorderStats(
        accepted=tally.accepted,
        queued=queued,
        written=tally.written,
        retried=tally.retried,
        duplicates=tally.duplicates,
        dropped=tally.dropped,
        failed=tally.failed,
        spilled=tally.spilled,
        replayed=tally.replayed,
        last_error=tally.last_error,
        housekeeping_errors=tally.housekeeping_errors,
        unwritten=tally.unwritten,
        queued_bytes=queued_bytes,
    )


@dataclass(frozen=True)
class RecorderOptions:
    """The checked options of one recorder (see :class:`Recorder` for each)."""

    max_batch: int
    flush_interval: float
    max_queue: int
    max_queue_bytes: int
    on_full: OnFull
    spill_path: Path | None
    spill: SpillMode
    before_record: Callable[[Any], Any] | None
    after_write: Callable[[list[ObjectId]], object] | None
    on_drop: Callable[[dict[str, Any]], object] | None
    on_error: Callable[[dict[str, Any], RecordRejected], object] | None
    retry_deadline: float
    stop_timeout: float

    @property
    def batch_size(self) -> int:
        """The most records in one batch: a batch never holds more than the queue."""
        return min(self.max_batch, self.max_queue)


def spill_file(value: object) -> Path | None:
    """The spill path as a ``Path`` (``{pid}`` is kept: it is filled in at start)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInput(f"spill_path must be a file path or None, got {value!r}")
    if not os.fspath(value):
        raise InvalidInput("spill_path is empty: give a file path, or None for no spill file")
    path = Path(value)
    if path.is_dir():
        raise InvalidInput(f"spill_path {path} is a directory; give a file path")
    if "{" in path.name.replace("{pid}", "") or "}" in path.name.replace("{pid}", ""):
        raise InvalidInput(
            f"spill_path {path}: the only placeholder a spill path may hold is {{pid}}"
        )
    return path


def check_options(
    *,
    max_batch: object,
    flush_interval: object,
    max_queue: object,
    max_queue_bytes: object = DEFAULT_MAX_QUEUE_BYTES,
    on_full: object,
    spill_path: object,
    spill: object,
    before_record: Any,
    after_write: Any,
    on_drop: Any,
    on_error: Any,
    retry_deadline: object,
    stop_timeout: object,
) -> RecorderOptions:
    """Check every option of a recorder; the first bad one raises ``InvalidInput``."""
    options = RecorderOptions(
        max_batch=check_int("max_batch", max_batch),
        flush_interval=check_seconds("flush_interval", flush_interval, allow_zero=True),
        max_queue=check_int("max_queue", max_queue),
        max_queue_bytes=check_int("max_queue_bytes", max_queue_bytes),
        on_full=cast(OnFull, check_choice("on_full", on_full, ("block", "raise", "drop"))),
        spill_path=spill_file(spill_path),
        spill=cast(SpillMode, check_choice("spill", spill, ("on_failure", "always"))),
        before_record=check_callback("before_record", before_record),
        after_write=check_callback("after_write", after_write),
        on_drop=check_callback("on_drop", on_drop),
        on_error=check_callback("on_error", on_error),
        retry_deadline=check_seconds("retry_deadline", retry_deadline),
        stop_timeout=check_seconds("stop_timeout", stop_timeout),
    )
    if options.spill == "always" and options.spill_path is None:
        raise InvalidInput(
            'spill="always" writes every record to the spill file: give a spill_path'
        )
    return options
