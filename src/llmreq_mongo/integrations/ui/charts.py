"""Charts drawn on the server: the geometry of SVG bar charts, for a template to draw.

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

from llmreq_mongo.analytics import CountBucket, LatencyStats

__all__ = ["Bar", "BarChart", "LatencyChart", "LatencyRow", "bar_chart", "latency_chart"]

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


#: The width of a latency bar's SVG, in its own coordinates (a bar's width is a percentage).
_LATENCY_WIDTH = 100


@dataclass(frozen=True)
class LatencyRow:
    """One group's latency: its p50 and p95 bars, as widths out of the chart's scale.

    Attributes:
        label: the model (or client) the row stands for; "" when the calls named none.
        calls: how many calls measured latency.
        p50: the median latency, in ms.
        p95: the 95th percentile, in ms.
        ttft_p50: the median time to first token of its streamed calls (None: no streams).
        p50_width: the p50 bar's width (0 to 100).
        p95_width: the p95 bar's width (0 to 100).
    """

    label: str
    calls: int
    p50: float
    p95: float
    ttft_p50: float | None
    p50_width: float
    p95_width: float


@dataclass(frozen=True)
class LatencyChart:
    """Latency per group, on one scale: every row's bars are widths out of ``scale`` ms."""

    rows: tuple[LatencyRow, ...]
    scale: float
    width: int = _LATENCY_WIDTH


def latency_chart(stats: Sequence[LatencyStats]) -> LatencyChart:
    """The chart of p50 and p95 latency per group (groups without timings left out)."""
    measured = [s for s in stats if s.latency_ms.count and s.latency_ms.p50 is not None]
    scale = max((s.latency_ms.p95 or 0.0 for s in measured), default=0.0)
    rows = []
    for s in measured:
        p50 = float(s.latency_ms.p50 or 0.0)
        p95 = float(s.latency_ms.p95 or p50)
        rows.append(
            LatencyRow(
                label=s.name or "",
                calls=s.latency_ms.count,
                p50=p50,
                p95=p95,
                ttft_p50=s.ttft_ms.p50,
                p50_width=round(_LATENCY_WIDTH * p50 / scale, 2) if scale else 0.0,
                p95_width=round(_LATENCY_WIDTH * p95 / scale, 2) if scale else 0.0,
            )
        )
    return LatencyChart(rows=tuple(rows), scale=scale)
