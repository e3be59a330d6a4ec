"""The options of a :class:`~llmreq_mongo.Recorder`, checked once when it is built, and its stats.

Every option goes through one of a few checks here, so a misspelt or
out-of-range value is refused with the same kind of message whatever the
option, and the rule that ``True`` is not a number is written once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard, TypeVar, cast

from bson import ObjectId

from llmreq_mongo.errors import InvalidInput, RecordRejected

from .delivery import Tally

__all__ = [
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


def snapshot(tally: Tally, *, queued: int) -> RecorderStats:
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
    )


@dataclass(frozen=True)
class RecorderOptions:
    """The checked options of one recorder (see :class:`Recorder` for each)."""

    max_batch: int
    flush_interval: float
    max_queue: int
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


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is a subclass of int, and max_batch=True is a mistake, never a 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an integer of at least 1 (not a bool)."""
    if not _is_number(value) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
    return value


def seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite, positive (or zero) number of seconds."""
    if (
        not _is_number(value)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        least = "zero or more" if allow_zero else "more than zero"
        raise InvalidInput(f"{name} must be a finite number of seconds, {least}; got {value!r}")
    return float(value)


def one_of(name: str, value: object, choices: tuple[_T, ...]) -> _T:
    """``value`` if it is one of ``choices``."""
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    listed = ", ".join(repr(c) for c in choices)
    raise InvalidInput(f"{name} must be one of {listed}; got {value!r}")


def callback(name: str, value: _T | None) -> _T | None:
    """``value`` if it is callable or None."""
    if value is not None and not callable(value):
        raise InvalidInput(f"{name} must be a function or None, got a {type(value).__name__}")
    return value


def spill_file(value: object) -> Path | None:
    """The spill path as a ``Path`` (``{pid}`` is kept: it is filled in at start)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInput(f"spill_path must be a file path or None, got {value!r}")
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
        max_batch=positive_int("max_batch", max_batch),
        flush_interval=seconds("flush_interval", flush_interval, allow_zero=True),
        max_queue=positive_int("max_queue", max_queue),
        on_full=cast(OnFull, one_of("on_full", on_full, ("block", "raise", "drop"))),
        spill_path=spill_file(spill_path),
        spill=cast(SpillMode, one_of("spill", spill, ("on_failure", "always"))),
        before_record=callback("before_record", before_record),
        after_write=callback("after_write", after_write),
        on_drop=callback("on_drop", on_drop),
        on_error=callback("on_error", on_error),
        retry_deadline=seconds("retry_deadline", retry_deadline),
        stop_timeout=seconds("stop_timeout", stop_timeout),
    )
    if options.spill == "always" and options.spill_path is None:
        raise InvalidInput(
            'spill="always" writes every record to the spill file: give a spill_path'
        )
    return options
