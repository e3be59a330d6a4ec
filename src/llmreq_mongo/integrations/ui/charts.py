"""Charts drawn on the server: the geometry of an SVG bar chart, for a template to draw.

The template writes the SVG from these numbers with classes only (no
``style`` attributes), so the page needs no script and nothing the
Content-Security-Policy would block; the colours come from the stylesheet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from llmreq_mongo.analytics import CountBucket

__all__ = ["Bar", "BarChart", "bar_chart"]

WIDTH = 720
HEIGHT = 180
_TOP = 12
_BOTTOM = 24
_LEFT = 40


@dataclass(frozen=True)
class Bar:
    """One bar: where it is drawn, and what it stands for (shown as its tooltip)."""

    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass(frozen=True)
class BarChart:
    """Bars with their axis labels, in the chart's own coordinates."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]
    peak: int
    total: int
    baseline: float
    left: int


def _label(start: dt.datetime, by: str) -> str:
    return start.strftime("%Y-%m-%d %H:00" if by == "hour" else "%Y-%m-%d")


def bar_chart(buckets: Sequence[CountBucket], *, by: str) -> BarChart:
    """The chart of request counts per bucket (``by`` is ``"day"`` or ``"hour"``)."""
    peak = max((b.count for b in buckets), default=0)
    inner = WIDTH - _LEFT
    plot = HEIGHT - _TOP - _BOTTOM
    step = inner / max(len(buckets), 1)
    gap = min(2.0, step / 4)
    bars = []
    for i, bucket in enumerate(buckets):
        height = 0.0 if peak == 0 else plot * bucket.count / peak
        bars.append(
            Bar(
                x=round(_LEFT + i * step + gap / 2, 2),
                y=round(_TOP + plot - height, 2),
                width=round(max(step - gap, 0.5), 2),
                height=round(height, 2),
                label=_label(bucket.start, by),
                count=bucket.count,
            )
        )
    # At most six labels along the time axis, the first and last included.
    ticks: list[tuple[float, str]] = []
    if buckets:
        every = max(1, -(-len(buckets) // 6))
        for i in range(0, len(buckets), every):
            fmt = "%H:00" if by == "hour" else "%m-%d"
            ticks.append((round(_LEFT + i * step + step / 2, 2), buckets[i].start.strftime(fmt)))
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        bars=tuple(bars),
        ticks=tuple(ticks),
        peak=peak,
        total=sum(b.count for b in buckets),
        baseline=HEIGHT - _BOTTOM,
        left=_LEFT,
    )
