"""Output: JSON for machines, Rich tables and bar charts for people."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from bson import ObjectId
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from llmreq_mongo._reports.conversation import chat_messages, message_text
from llmreq_mongo._reports.shown import written_out
from llmreq_mongo._time import to_utc_ms

from ._durations import format_time

__all__ = [
    "bar",
    "bar_chart",
    "chat_messages",
    "dump_json",
    "json_default",
    "message_text",
    "one_line",
    "plural",
    "print_json",
    "print_sessions",
    "show",
    "table",
]

_EIGHTHS = " ▏▎▍▌▋▊▉"


def json_default(value: Any) -> Any:
    """Encode the BSON values JSON lacks: times as ISO 8601 (UTC, ms), ids as hex."""
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def dump_json(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text (UTF-8 kept as is, BSON values encoded by :func:`json_default`)."""
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(
        value, ensure_ascii=False, default=json_default, indent=indent, separators=separators
    )


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout, with no markup or wrapping."""
    sys.stdout.write(dump_json(value, indent=2) + "\n")
    sys.stdout.flush()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    right: int = 0,
    wrap: Sequence[str] = (),
) -> RenderableType:
    """A plain table; the last ``right`` columns are right-aligned (numbers).

    Cells never wrap (ids and times stay whole) except in the ``wrap`` columns,
    and number columns never shrink below their heading. Times are shown to the
    second, in UTC (``--json`` gives them to the millisecond).
    """
    out = Table(header_style="bold", show_edge=False)
    for i, name in enumerate(columns):
        numeric = i >= len(columns) - right
        out.add_column(
            name,
            justify="right" if numeric else "left",
            no_wrap=name not in wrap,
            min_width=len(name) if numeric else None,
        )
    for row in rows:
        out.add_row(*(_cell(v) for v in row))
    return _titled(title, out)


def _cell(value: Any) -> str | Text:
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, dt.datetime):
        return to_utc_ms(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Text):
        return value
    # A key or a name in a cell: a newline or an escape sequence written out,
    # before the table measures the cell.
    return Text(written_out(str(value)))


def bar(value: float, largest: float, width: int) -> str:
    """A horizontal bar of at most ``width`` cells, drawn to an eighth of a cell."""
    if largest <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / largest * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")


def bar_chart(
    title: str | None,
    rows: Sequence[tuple[str, int | None]],
    *,
    headers: tuple[str, str] = ("", "requests"),
    width: int = 40,
) -> RenderableType:
    """A table of labels and counts with a bar per row, scaled to the largest count.

    A count of None (a token sum nothing was reported for) shows as ``-``, with no bar.
    """
    largest = max((count or 0 for _, count in rows), default=0)
    chart = Table(header_style="bold", show_edge=False)
    chart.add_column(headers[0], no_wrap=True)
    chart.add_column(headers[1], justify="right", no_wrap=True)
    chart.add_column("", no_wrap=True, style="cyan")
    for label, count in rows:
        if count is None:
            chart.add_row(Text(written_out(label)), Text("-", style="dim"), "")
        else:
            chart.add_row(Text(written_out(label)), f"{count:,}", bar(count, largest, width))
    return _titled(title, chart)


def _titled(title: str | None, body: Table) -> RenderableType:
    # A line of its own rather than Rich's table title, which wraps at the
    # table's width.
    return body if title is None else Group(Text(title, style="bold"), body)


def show(console: Console, *renderables: Any) -> None:
    """Print renderables separated by blank lines."""
    for i, item in enumerate(renderables):
        if i:
            console.print()
        console.print(item)


def one_line(payload: Any, *, width: int = 80) -> str:
    """A one-line summary of a payload: the last chat message, else compact JSON."""
    messages = chat_messages(payload)
    if messages:
        role, text = messages[-1]
        summary = f"{role}: {text}"
    else:
        summary = dump_json(payload)
    summary = " ".join(summary.split())
    return summary if len(summary) <= width else summary[: width - 1] + "…"


def print_sessions(console: Console, rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print session summaries (dicts with ``session_key``, ``llm_client``, ``requests``,
    ``first_at`` and ``last_at``) as a table."""
    if not rows:
        console.print("no sessions match", markup=False)
        return
    console.print(
        table(
            title,
            ["session", "client", "requests", "first (UTC)", "last (UTC)"],
            [
                [r["session_key"], r["llm_client"], r["requests"], r["first_at"], r["last_at"]]
                for r in rows
            ],
            right=3,
        )
    )


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 request``, ``2 requests``, ``3 batches`` (pass ``many`` when not just ``+s``)."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"
