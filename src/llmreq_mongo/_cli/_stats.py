"""``llmreq stats``: requests or tokens per day or hour, as a bar chart.

``--measure`` says what is counted: ``requests`` (the default),
``input_tokens`` or ``output_tokens`` (the sums the calls' responses
reported), or ``tokens``, input plus output, with both parts shown. A
bucket where no call reported a count shows ``-``, never 0.
"""

from __future__ import annotations

import zoneinfo
from enum import Enum
from typing import Annotated, Any, Literal

import typer

from llmreq_mongo import analytics
from llmreq_mongo._checks import check_session_key
from llmreq_mongo._connection import Handle
from llmreq_mongo.errors import InvalidInput

from ._app import JsonFlag, app, reported, run, settings_of
from ._durations import format_time
from ._inspect import ClientOption, UntilOption, client_or_none, window
from ._render import bar_chart, print_json

__all__ = ["Bucket", "Measure", "stats"]


class Bucket(str, Enum):
    """The bucket sizes ``stats`` counts by."""

    day = "day"
    hour = "hour"


class Measure(str, Enum):
    """What ``stats`` counts in each bucket."""

    requests = "requests"
    tokens = "tokens"
    input_tokens = "input_tokens"
    output_tokens = "output_tokens"


_DEFAULT_SPAN = {Bucket.day: "14d", Bucket.hour: "24h"}
#: The series ``request_counts`` computes for each measure.
_SERIES: dict[Measure, tuple[Literal["requests", "input_tokens", "output_tokens"], ...]] = {
    Measure.requests: ("requests",),
    Measure.tokens: ("input_tokens", "output_tokens"),
    Measure.input_tokens: ("input_tokens",),
    Measure.output_tokens: ("output_tokens",),
}
_TITLE = {
    Measure.requests: "requests",
    Measure.tokens: "tokens (input + output)",
    Measure.input_tokens: "input tokens",
    Measure.output_tokens: "output tokens",
}


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _known_sum(counts: list[int | None]) -> int | None:
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


def _shown(count: int | None) -> str:
    return "-" if count is None else f"{count:,}"


@app.command()
def stats(
    ctx: typer.Context,
    by: Annotated[Bucket, typer.Option(help="Bucket size.")] = Bucket.day,
    measure: Annotated[
        Measure,
        typer.Option(
            help="What to count: requests, tokens (input + output), input_tokens, output_tokens."
        ),
    ] = Measure.requests,
    client: ClientOption = None,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone the days/hours are cut in.")] = "UTC",
    since: Annotated[
        str | None,
        typer.Option(help="From this time (default: 14d by day, 24h by hour)."),
    ] = None,
    until: UntilOption = None,
    json: JsonFlag = False,
) -> None:
    """Requests or tokens per day or hour, as a table with a bar chart (empty buckets included)."""
    settings = settings_of(ctx)
    with reported(settings):
        # Both ends are set, so every bucket of the window is listed, even
        # when none holds a request.
        start, end = window(
            _DEFAULT_SPAN[by] if since is None else since, "now" if until is None else until
        )
        key = check_session_key(session, nullable=False) if session is not None else None
        try:
            zone = zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"--tz {tz!r} is not a known time zone; use an IANA name such as "
                "UTC, Europe/Paris or America/New_York"
            ) from None
    wanted = _SERIES[measure]

    async def work(handle: Handle) -> dict[str, list[analytics.CountBucket]]:
        found = await client_or_none(client)
        return {
            name: await analytics.request_counts(
                by=by.value,
                llm_client=found,
                session_key=key,
                since=start,
                until=end,
                tz=tz,
                measure=name,
            )
            for name in wanted
        }

    series = run(settings, work)
    buckets = series[wanted[0]]
    if measure is Measure.tokens:
        inputs = [b.count for b in series["input_tokens"]]
        outputs = [b.count for b in series["output_tokens"]]
        counts = [_add(i, o) for i, o in zip(inputs, outputs, strict=True)]
    else:
        counts = [b.count for b in buckets]
    if settings.wants_json(json):
        rows: list[dict[str, Any]] = []
        for i, b in enumerate(buckets):
            row: dict[str, Any] = {"start": format_time(b.start)}
            if measure is Measure.requests:
                row["count"] = b.count
            elif measure is Measure.tokens:
                row.update(tokens=counts[i], input_tokens=inputs[i], output_tokens=outputs[i])
            else:
                row[measure.value] = b.count
            rows.append(row)
        print_json(rows)
        return
    label = "%Y-%m-%d %a" if by is Bucket.day else "%Y-%m-%d %H:%M"
    chart = [
        (b.start.astimezone(zone).strftime(label), count)
        for b, count in zip(buckets, counts, strict=True)
    ]
    scope = ", ".join(
        part
        for part in (
            f"client {client}" if client else "",
            f"session {key}" if key else "",
            f"time zone {tz}",
        )
        if part
    )
    whole = _known_sum(counts)
    total = "none reported" if whole is None else f"{whole:,} in all"
    if measure is Measure.tokens and whole is not None:
        total += f" ({_shown(_known_sum(inputs))} in, {_shown(_known_sum(outputs))} out)"
    settings.console.print(
        bar_chart(
            f"{_TITLE[measure]} per {by.value} ({scope}): {total}",
            chart,
            headers=("", "requests" if measure is Measure.requests else "tokens"),
        ),
        markup=False,
    )
