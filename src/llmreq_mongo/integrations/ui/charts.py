"""Charts drawn on the server: the geometry of an SVG bar chart, for a template to draw.

The bars are drawn in an SVG whose coordinates stretch to the width of the
page (``preserveAspectRatio="none"``), so the chart fills a laptop screen and
a phone alike at a height set by the stylesheet. Its labels are HTML under
it, one cell per bar, so text is never stretched. The template writes
everything with classes only (no ``style`` attributes), so the page needs no
script and nothing the Content-Security-Policy would block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmreq_mongo.analytics import CountBucket

__all__ = ["Bar", "BarChart", "bar_chart"]

#: Each bar's slot in the SVG's own coordinates, and the plot's height.
_SLOT = 10
_HEIGHT = 100
_MAX_LABELS = 7


@dataclass(frozen=True)
class Bar:
    """One bar: where it is drawn, and what it stands for.

    Attributes:
        tick: the axis label under the bar ("" for most bars, so labels do not crowd).
    """

    x: float
    y: float
    width: float
    height: float
    label: str
    count: int
    tick: str


@dataclass(frozen=True)
class BarChart:
    """Bars in the chart's own coordinates, with its size and its totals."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    peak: int
    total: int


def bar_chart(buckets: Sequence[CountBucket], *, by: str) -> BarChart:
    """The chart of request counts per bucket (``by`` is ``"day"`` or ``"hour"``)."""
    # A count is None only for a token measure with nothing reported: no bar.
    counts = [b.count or 0 for b in buckets]
    peak = max(counts, default=0)
    every = max(1, -(-len(buckets) // _MAX_LABELS))
    tick_format = "%H:00" if by == "hour" else "%m-%d"
    label_format = "%Y-%m-%d %H:00" if by == "hour" else "%Y-%m-%d"
    bars = []
    for i, bucket in enumerate(buckets):
        height = 0.0 if peak == 0 else round(_HEIGHT * counts[i] / peak, 2)
        bars.append(
            Bar(
                x=i * _SLOT + 1,
                y=round(_HEIGHT - height, 2),
                width=_SLOT - 2,
                height=height,
                label=bucket.start.strftime(label_format),
                count=counts[i],
                tick=bucket.start.strftime(tick_format) if i % every == 0 else "",
            )
        )
    return BarChart(
        width=max(len(buckets), 1) * _SLOT,
        height=_HEIGHT,
        bars=tuple(bars),
        peak=peak,
        total=sum(counts),
    )
