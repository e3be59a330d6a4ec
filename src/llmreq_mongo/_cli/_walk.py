"""Reading requests in (``created_at``, ``_id``) order, one bounded time window at a time.

``llmreq export`` reads every request of its window. One query for all of them
makes the server gather the whole result before it answers: on the embedded
engine every matching document is read and decoded before the first batch
(and, with ``--client``, sorted in memory), so the first answer of an export
of 100,000 requests took longer than the CLI's 5 s timeout, and the server
held the whole export in memory (docs/embedded-engine.md, § 24). Here the
history is walked in ``created_at`` windows instead, each a range scan of the
``created_at`` index (``llmreq_client_time`` with ``--client``), and rows are
handed on as each window arrives.

The walk:

1. The oldest record is found without reading the whole store: "the oldest
   record before t?" is asked (one record, its time only) for t = top - 2**k
   seconds, k going down from 31 (68 years back) to 6 (a minute) in sixths.
   Every answer but the last is an empty range scan; the first non-empty
   one reads, on the embedded engine, the records of the step where the
   history starts (the engine reads a whole range before it applies a
   limit): at most 12% of the time from the oldest record to the top, and
   less than 5% for a history spread evenly over the last 90 days. A
   record older than 68 years is found by the first question.
2. From the oldest record to the end of its step (or over the last minute,
   when nothing is older), :data:`FIRST_SPLIT` equal windows, the first one
   open below.
3. The rest is read in windows sized from what the previous window held, to
   hold about :data:`TARGET` records (at most 4 times wider or narrower from
   one window to the next).
4. Without ``until``, a last window open at the top takes what was stamped
   after the walk began (records still arriving, or dated in the future).

Consecutive windows share their bound (``$lt`` b, then ``$gte`` b), so every
record falls in exactly one of them, whatever its time. Records sharing a
millisecond are always in the same window; the server sorts each window by
``created_at``, and those ties are put in ``_id`` order here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

__all__ = ["FIRST_SPLIT", "TARGET", "in_time_order", "one_window", "windows_of"]

#: Records a window aims at.
TARGET = 2000
#: Windows the step holding the oldest record is read in.
FIRST_SPLIT = 16
#: The farthest back the search for the oldest record starts: 2**31 s (68 years).
_LADDER = 31
#: Steps of that search per doubling of the distance back.
_RUNGS = 6
#: Its last step: 2**6 s (a minute) before the top; that minute is one window.
_LAST_RUNG = 6
_BATCH = 1000
#: Rows handed on between two turns given to the next window's read.
_HAND_OVER = 200
_MS = dt.timedelta(milliseconds=1)
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
_MAX_GROWTH = 4.0
#: A window: ``start <= created_at < end``, None being open.
_Window = tuple[dt.datetime | None, dt.datetime | None]


def _ms(when: dt.datetime) -> dt.datetime:
    """``when`` truncated to the millisecond, BSON's precision."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def windows_of(
    query: Mapping[str, Any], start: dt.datetime | None, end: dt.datetime | None
) -> dict[str, Any]:
    """``query`` restricted to ``start <= created_at < end`` (None: unbounded there).

    The bounds replace any ``created_at`` condition ``query`` has; the caller
    keeps windows inside it.
    """
    bounds: dict[str, dt.datetime] = {}
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    window = {k: v for k, v in query.items() if k != "created_at"}
    if bounds:
        window["created_at"] = bounds
    return window


async def _oldest_in(
    coll: AsyncCollection[dict[str, Any]],
    query: Mapping[str, Any],
    start: dt.datetime | None,
    end: dt.datetime,
) -> dt.datetime | None:
    """The ``created_at`` of the oldest record in the window, or None if it is empty."""
    found = await coll.find_one(
        windows_of(query, start, end), projection={"created_at": 1}, sort=[("created_at", 1)]
    )
    return None if found is None else found["created_at"]


async def _oldest_step(
    coll: AsyncCollection[dict[str, Any]],
    query: Mapping[str, Any],
    floor: dt.datetime | None,
    top: dt.datetime,
) -> tuple[dt.datetime, dt.datetime]:
    """Where the walk starts: ``(low, high)``, read in :data:`FIRST_SPLIT` windows.

    ``low`` is the time of the oldest record at or after ``floor`` and
    ``high`` the end of the step it was found in; when nothing is older than
    the last step, ``[low, high)`` is that last minute (from ``floor`` if it
    is later) up to ``top``.
    """
    low = floor
    for rung in range(_LADDER * _RUNGS, _LAST_RUNG * _RUNGS - 1, -1):
        try:
            step = _ms(top - dt.timedelta(seconds=2 ** (rung / _RUNGS)))
        except OverflowError:
            continue  # before year 1: nothing can be stored there
        if step <= _EARLIEST or (floor is not None and step <= floor):
            continue
        oldest = await _oldest_in(coll, query, floor, step)
        if oldest is not None:
            return oldest, step
        low = step
    return (low if low is not None and low < top else top), top


async def one_window(
    coll: AsyncCollection[dict[str, Any]], query: Mapping[str, Any]
) -> AsyncGenerator[dict[str, Any], None]:
    """The records matching ``query`` in (``created_at``, ``_id``) order, in one query.

    For a query an index bounds already (one session). The server sorts by
    ``created_at``; records sharing a millisecond are put in ``_id`` order
    here, holding only that handful in memory.
    """
    tied: list[dict[str, Any]] = []
    cursor = coll.find(query, sort=[("created_at", 1)], batch_size=_BATCH)
    try:
        async for raw in cursor:
            if tied and raw["created_at"] != tied[0]["created_at"]:
                tied.sort(key=lambda r: r["_id"])
                for item in tied:
                    yield item
                tied.clear()
            tied.append(raw)
    finally:
        await cursor.close()
    tied.sort(key=lambda r: r["_id"])
    for item in tied:
        yield item


async def _fetch(
    coll: AsyncCollection[dict[str, Any]], query: Mapping[str, Any], window: _Window
) -> list[dict[str, Any]]:
    """The records of one window, in (``created_at``, ``_id``) order."""
    rows: list[dict[str, Any]] = []
    stream = one_window(coll, windows_of(query, *window))
    try:
        async for row in stream:
            rows.append(row)
    finally:
        await stream.aclose()  # closes the cursor, also when cancelled
    return rows


def _step(edge: dt.datetime, width: dt.timedelta, limit: dt.datetime) -> dt.datetime:
    """The end of the window that starts at ``edge``: ``width`` on, at most ``limit``."""
    if width >= limit - edge:
        return limit
    return max(_ms(edge + width), edge + _MS)


class _Plan:
    """The windows of a walk, each one decided when the previous one's size is known.

    First ``[first, fixed_end)`` in windows of ``width`` (the step of the
    oldest record), then windows up to ``top`` sized to hold about ``target``
    records, then, if ``open_top``, the window above ``top``.
    """

    def __init__(
        self,
        first: dt.datetime | None,
        low: dt.datetime,
        fixed_end: dt.datetime,
        width: dt.timedelta,
        top: dt.datetime,
        *,
        open_top: bool,
        target: int,
    ) -> None:
        self._target = target
        self._first: dt.datetime | None = first
        self._started = False
        self._edge = low
        self._fixed_end = fixed_end
        self._width = width
        self._top = top
        self._open_top = open_top

    def next(self, held: int | None) -> _Window | None:
        """The window after the one that held ``held`` records (None: the first)."""
        fixed = self._edge < self._fixed_end
        if held is not None and not fixed:
            growth = self._target / held if held else _MAX_GROWTH
            growth = min(max(growth, 1 / _MAX_GROWTH), _MAX_GROWTH)
            self._width = max(self._width * growth, _MS)
        if self._edge < self._top:
            start = self._edge if self._started else self._first
            self._started = True
            end = _step(self._edge, self._width, self._fixed_end if fixed else self._top)
            self._edge = end
            return start, end
        if self._open_top:
            self._open_top = False
            return (self._edge if self._started else self._first), None
        return None


async def in_time_order(
    coll: AsyncCollection[dict[str, Any]],
    query: Mapping[str, Any],
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    now: dt.datetime,
    target: int = TARGET,
) -> AsyncIterator[dict[str, Any]]:
    """Every request matching ``query`` with ``since <= created_at < until``, in order.

    While one window's rows are handed on, the next window is already being
    read, so a server in another process works while the caller does.

    Args:
        coll: the requests collection.
        query: a filter on anything but ``created_at`` (a client, say); the
            window bounds are added to it.
        since: the first time, or None for the oldest record.
        until: the end (excluded), or None for everything: the windows then go
            up to ``now``, and one last window takes what comes after.
        now: when the walk begins.
        target: how many records a window aims at.
    """
    top = until if until is not None else _ms(now) + _MS
    low, high = await _oldest_step(coll, query, since, top)
    width = max((high - low) / FIRST_SPLIT, _MS)
    # The first window starts at ``since``, or is open below: nothing older
    # was found, and a record stamped there meanwhile is not missed.
    plan = _Plan(since, low, high, width, top, open_top=until is None, target=target)
    window = plan.next(None)
    pending = asyncio.ensure_future(_fetch(coll, query, window)) if window else None
    try:
        while pending is not None:
            rows = await pending
            window = plan.next(len(rows))
            pending = asyncio.ensure_future(_fetch(coll, query, window)) if window else None
            for count, row in enumerate(rows, 1):
                if count % _HAND_OVER == 1:
                    # The caller works through the rows without waiting on anything:
                    # give the next window's read its turn (to send its query, to
                    # take in a batch), or the server would wait for the caller.
                    await asyncio.sleep(0)
                yield row
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
