"""What each page reads, through the library's public read API only.

Each function takes checked values (never raw query text from the URL) and
returns what a template shows. Lists are keyset pages; nothing here skips.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bson import ObjectId

from llmreq_mongo import analytics
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import Page
from llmreq_mongo._reports.conversation import Conversation, Turn
from llmreq_mongo._reports.reading import client_names_of
from llmreq_mongo._reports.session_pages import session_page
from llmreq_mongo._time import now_ms
from llmreq_mongo.integrations.ui.charts import BarChart, LatencyChart, bar_chart, latency_chart
from llmreq_mongo.integrations.ui.turns import answer_text, chat_view
from llmreq_mongo.integrations.ui.views import (
    NO_USAGE,
    CallFigures,
    UsageFigures,
    call_figures,
    count_text,
    millis_text,
)

__all__ = [
    "WINDOWS",
    "Call",
    "ClientRow",
    "Overview",
    "SessionRow",
    "client_names",
    "find_client",
    "overview",
    "session_calls",
    "sessions",
    "window_start",
]

#: The windows a page offers, by the name the URL carries.
WINDOWS: dict[str, dt.timedelta] = {
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
}
_MAX_CLIENTS = 500


def window_start(window: str, now: dt.datetime) -> dt.datetime | None:
    """The start of a named window ending at ``now`` (None for ``"all"``)."""
    span = WINDOWS.get(window)
    return None if span is None else now - span


@dataclass(frozen=True)
class ClientRow:
    """One client on the overview."""

    id: str
    name: str
    description: str
    requests: int
    sessions: int
    last_at: dt.datetime | None
    usage: UsageFigures


@dataclass(frozen=True)
class Overview:
    """The overview: one row per client, the calls-per-bucket chart, latency per model."""

    rows: tuple[ClientRow, ...]
    chart: BarChart
    by: Literal["day", "hour"]
    since: dt.datetime
    until: dt.datetime
    latency: LatencyChart

    @property
    def latency_recorded(self) -> bool:
        """Whether any call of the window carries a response with its latency."""
        return bool(self.latency.rows)


async def client_names(shown: Iterable[Any] = ()) -> dict[ObjectId, str]:
    """Clients' names by id, in name order: the first :data:`_MAX_CLIENTS` (the
    client filter's choices), and those of ``shown``, the client ids a page labels."""
    found = await LLMClient.objects.order_by("name").limit(_MAX_CLIENTS).to_list()
    names = {ObjectId(c.id): c.name for c in found}
    missing = {ObjectId(i) for i in shown} - names.keys()
    if missing:
        names.update(await client_names_of(missing))
        names = dict(sorted(names.items(), key=lambda item: item[1]))
    return names


async def find_client(name: str) -> LLMClient | None:
    """The client called ``name``, or None."""
    return await LLMClient.objects.filter(name=name).first()


def _usage_figures(
    usage: analytics.ClientUsage | None, timing: analytics.LatencyStats | None
) -> UsageFigures:
    """A client's totals as text: an em dash for what none of its calls recorded."""
    latency = timing.latency_ms if timing is not None else None
    if usage is None or latency is None or not latency.count:
        # None of its calls carries a response: errors and latency are unknown, not 0.
        return NO_USAGE
    return UsageFigures(
        tokens_in=count_text(usage.input_tokens),
        tokens_out=count_text(usage.output_tokens),
        errors=count_text(usage.errors),
        latency_p50=millis_text(latency.p50),
        latency_p95=millis_text(latency.p95),
        recorded=True,
    )


async def overview(window: str) -> Overview:
    """Per client usage over ``window``, the chart of calls per hour or day, latency per model.

    Every figure comes from the library's reports: requests, sessions, tokens
    and errors from :func:`~llmreq_mongo.analytics.client_usage`, latency
    percentiles from :func:`~llmreq_mongo.analytics.latency` (exact, nearest
    rank), over the same window.
    """
    until = now_ms()
    since = window_start(window, until)
    assert since is not None  # the overview offers bounded windows only
    usage = {u.llm_client_id: u for u in await analytics.client_usage(since=since, until=until)}
    timings = {
        row.llm_client_id: row
        for row in await analytics.latency(by="client", since=since, until=until)
    }
    rows = []
    for client in await LLMClient.objects.order_by("name").limit(_MAX_CLIENTS).to_list():
        cid = ObjectId(client.id)
        used = usage.get(cid)
        rows.append(
            ClientRow(
                id=str(client.id),
                name=client.name,
                description=client.description,
                requests=used.requests if used else 0,
                sessions=used.sessions if used else 0,
                last_at=used.last_at if used else None,
                usage=_usage_figures(used, timings.get(cid)),
            )
        )
    rows.sort(key=lambda r: (-r.requests, r.name))
    by: Literal["day", "hour"] = "hour" if window == "24h" else "day"
    buckets = await analytics.request_counts(by=by, since=since, until=until)
    per_model = await analytics.latency(by="model", since=since, until=until)
    return Overview(
        rows=tuple(rows),
        chart=bar_chart(buckets, by=by),
        by=by,
        since=since,
        until=until,
        latency=latency_chart(per_model),
    )


@dataclass(frozen=True)
class SessionRow:
    """One session (one key of one client) on the sessions list.

    Attributes:
        summary: what :func:`~llmreq_mongo.analytics.session_page` counted.
        errors: its failed calls as text; :data:`~.views.DASH` when none of
            its calls in the window carries a response (unknown, not 0).
    """

    summary: analytics.SessionSummary
    errors: str


async def _responded(summary: analytics.SessionSummary) -> bool:
    """Whether any call the summary counts carries a response.

    The summary's ``errors`` is 0 both for calls that all succeeded and for
    calls recorded without their response. The calls it counts are this
    client's raw records of the key between its first and last call (the
    window holds them all), so one indexed query on the session tells.
    """
    if summary.errors or summary.input_tokens is not None or summary.output_tokens is not None:
        return True  # an error or a token count can only come from a response
    history = LLMClientRequest.objects.for_session(
        summary.session_key, llm_client=summary.llm_client_id, include_aggregations=False
    )
    window = history.filter(created_at__gte=summary.first_at, created_at__lte=summary.last_at)
    return await window.filter(response__isnull=False).exists()


async def sessions(
    *,
    client: LLMClient | None,
    window: str,
    prefix: str | None,
    size: int,
    after: str | None,
) -> Page[SessionRow]:
    """One keyset page of sessions, latest first, each with its errors as text."""
    page = await session_page(
        llm_client=client, within=WINDOWS.get(window), key_prefix=prefix, size=size, after=after
    )
    responded = await asyncio.gather(*(_responded(s) for s in page.items))
    rows = [
        SessionRow(summary=s, errors=count_text(s.errors) if known else NO_USAGE.errors)
        for s, known in zip(page.items, responded, strict=True)
    ]
    return Page(rows, page.next_cursor)


@dataclass(frozen=True)
class Call:
    """One call of a session, as the conversation page shows it.

    Attributes:
        turn: the request's new messages (the previous call's answer, which
            the client sends back, is not new: it was shown with that call).
        figures: the response's figures and its answer.
    """

    record: LLMClientRequest
    turn: Turn
    figures: CallFigures


def _calls(
    records: Sequence[LLMClientRequest], prior: LLMClientRequest | None = None
) -> list[Call]:
    """The records as calls, each with only what it adds to the one before.

    ``prior`` is the call before the first of ``records`` (the last of the
    previous page): the first call then shows what it adds to it, not the
    whole conversation so far.
    """
    conversation = Conversation()
    calls: list[Call] = []
    previous: CallFigures | None = None
    if prior is not None:
        conversation.add(chat_view(prior.request))
        previous = call_figures(prior)
    for record in records:
        turn = conversation.add(chat_view(record.request))
        figures = call_figures(record)
        if turn.messages and previous is not None and previous.parts:
            first = turn.messages[0]
            if first.role == "assistant" and first.text == answer_text(previous.parts):
                turn = Turn(turn.messages[1:], turn.earlier + 1)
        calls.append(Call(record=record, turn=turn, figures=figures))
        previous = figures
    return calls


async def session_calls(
    session_key: str, *, client: LLMClient | None = None, size: int, after: str | None
) -> tuple[Sequence[Call], str | None, int]:
    """One page of a session's calls in order, each with only its new messages.

    With ``client``, only that client's calls: two clients using the same key
    hold two conversations, which read as one only when interleaved.

    Returns the calls, the next page's cursor, and how many calls come before
    this page (so a later page numbers its calls on from the earlier ones).
    """
    history = LLMClientRequest.objects.for_session(session_key, llm_client=client)
    page = await history.page(size=size, after=after)
    before, prior = 0, None
    if after is not None and page.items:
        # The session's order is (created_at, _id): what sorts before the first call.
        first = page.items[0]
        earlier = history.filter(created_at__lt=first.created_at)
        same_time = history.filter(created_at=first.created_at, id__lt=first.id)
        before = await earlier.count() + await same_time.count()
        prior = await same_time.order_by("-id").first() or (
            await earlier.order_by("-created_at", "-id").first()
        )
    return _calls(page.items, prior), page.next_cursor, before
