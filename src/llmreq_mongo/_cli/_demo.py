"""``llmreq demo``: record realistic LLM calls through the recorder, then report on them.

Three clients hold conversations (see :mod:`._demo_script`): each session
belongs to one client, and every request resends the conversation so far
plus a new user message, as chat clients do. Every call is recorded with the
response it got (see :mod:`._demo_talk` and :mod:`._demo_wire`): the answer
written for its question, streamed or not, with usage or without, and a few
failures (a 429, a 500, an upstream that cannot be reached, a stream cut
short), each read from the provider's own bytes as capture reads them. The
records go through :class:`~llmreq_mongo.Recorder` (batched ``insert_many``
in the background), with a progress bar that moves as MongoDB acknowledges
each batch.

Each session starts at its own moment of the last seven days and its turns
come 20 s to 3 min apart (a retry 1 to 4 s after the failure), recorded with
those times (``created_at``, a backfill), so ``sessions``, ``stats`` and
``show`` have days and hours to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from llmreq_mongo import analytics
from llmreq_mongo._capture import LLMResponse
from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._recording.recorder import Recorder, RecorderStats
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import LLMReqError

from ._app import JsonFlag, app, run, settings_of
from ._demo_script import PERSONAS as _PERSONAS
from ._demo_talk import DAYS as _DAYS
from ._demo_talk import DemoSession, fault_plan
from ._demo_wire import Fault
from ._durations import format_time
from ._names import client_names, name_of
from ._render import bar_chart, plural, print_json, print_sessions

__all__ = ["demo"]

_SHOWN = 10
_MAX_SUMMARIES = 10_000
_BATCH = 500
#: Records the demo lets wait for MongoDB before it builds the next call.
_AHEAD = 2 * _BATCH
#: Seconds between two looks at whether MongoDB caught up, when no
#: acknowledgement came (records that failed or were spilled get none).
_PACE = 0.1


def next_session(
    i: int,
    talks: list[tuple[LLMClient, DemoSession]],
    waiting: list[Fault],
    rng: random.Random,
) -> tuple[LLMClient, DemoSession]:
    """The session that makes call ``i``: each in turn first, then one at random.

    While a cut is waiting for a call it fits, the call goes to a session
    that streams, so that the cut planned for every run happens in it.
    """
    if i < len(talks):
        return talks[i]
    if "cut" in waiting:
        streaming = [pair for pair in talks if pair[1].can_be_cut()]
        if streaming:
            return rng.choice(streaming)
    return rng.choice(talks)


async def keep_pace(recorder: Recorder, acknowledged: asyncio.Event) -> None:
    """Let the writer and a Ctrl-C run, and wait while MongoDB is far behind.

    Building a call is pure Python and ``arecord`` returns at once while the
    queue has room, so without this the loop would build every call before
    the recorder's writer task, or the cancellation a Ctrl-C sends, got to
    run: an interrupt was acted on only seconds later, with thousands of
    records queued that its clean-up had no time to write. Kept to
    :data:`_AHEAD` records, the queue is written within the clean-up, and
    every record is counted as MongoDB acknowledges it. ``acknowledged`` is
    set by the recorder's ``after_write``.
    """
    await asyncio.sleep(0)
    while recorder.stats.queued >= _AHEAD:
        acknowledged.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(acknowledged.wait(), _PACE)


async def _write_what_is_queued(recorder: Recorder) -> None:
    """On an interrupt: wait for the records already queued (at most :data:`_AHEAD`).

    Left to the recorder's own stop, which gives an interrupted block a
    second, the last batch could be stored without its acknowledgement
    arriving in time, and the line the interrupt prints would count fewer
    records than the store holds.
    """
    with contextlib.suppress(LLMReqError):  # the interrupt is what is reported
        await recorder.flush()


def _kind(response: LLMResponse) -> str:
    """How a call ended, for the run's summary."""
    if response.status is None:
        return "unreachable"
    if response.status >= 400:
        return str(response.status)
    if response.error is not None:
        return "cut"
    return "streamed" if response.stream else "answered"


@dataclass(frozen=True)
class _Run:
    recorded: int
    #: The sessions that made a call (fewer than ``--sessions`` when
    #: ``--requests`` is smaller).
    sessions: int
    seconds: float
    stats: RecorderStats
    summaries: list[analytics.SessionSummary]
    usage: list[analytics.ClientUsage]
    names: dict[Any, str]
    #: How the calls ended: answered, streamed, cut, 429, 500, unreachable.
    outcomes: Counter[str]


@app.command()
def demo(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=1, max=1_000_000, help="Requests to record.")] = 240,
    sessions: Annotated[
        int, typer.Option(min=1, max=100_000, help="Sessions to spread them over.")
    ] = 40,
    json: JsonFlag = False,
) -> None:
    """Record realistic LLM calls and their responses, then show sessions and usage."""
    settings = settings_of(ctx)
    as_json = settings.wants_json(json)
    err = settings.err

    async def work(handle: Handle) -> _Run:
        rng = random.Random()
        clients = []
        for persona in _PERSONAS:
            client, _ = await LLMClient.objects.get_or_create(
                name=persona.name, defaults={"description": persona.description}
            )
            clients.append(client)
        talks = [(clients[i % len(clients)], DemoSession(i, rng)) for i in range(sessions)]
        plan = fault_plan(requests, rng)
        # Imported here: the progress bar costs every other command's start.
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            TextColumn("recording"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json or not err.is_terminal,
        )
        task = progress.add_task("record", total=requests)

        acknowledged = asyncio.Event()

        def written(ids: list[Any]) -> None:
            stored[0] += len(ids)
            acknowledged.set()
            progress.advance(task, len(ids))

        outcomes: Counter[str] = Counter()
        waiting: list[Fault] = []  # planned faults not yet given to a call they fit
        clock = time.perf_counter()
        with progress:
            async with Recorder(max_batch=_BATCH, after_write=written) as recorder:
                try:
                    for i in range(requests):
                        await keep_pace(recorder, acknowledged)
                        if i in plan:
                            waiting.append(plan[i])
                        client, talk = next_session(i, talks, waiting, rng)
                        fault = next((f for f in waiting if f != "cut" or talk.can_be_cut()), None)
                        if fault is not None:
                            waiting.remove(fault)
                        call = talk.next_call(rng, fault)
                        outcomes[_kind(call.response)] += 1
                        talk.ids.append(
                            await recorder.arecord(
                                client,
                                call.payload,
                                session_key=talk.key,
                                created_at=call.at,
                                response=call.response,
                            )
                        )
                except asyncio.CancelledError:
                    await _write_what_is_queued(recorder)
                    raise
                await recorder.flush()
                stats = recorder.stats
        seconds = time.perf_counter() - clock
        keys = {talk.key for _, talk in talks}
        recent = now_ms() - dt.timedelta(days=_DAYS, hours=1)
        summaries = [
            s
            for s in await analytics.session_summaries(since=recent, limit=_MAX_SUMMARIES)
            if s.session_key in keys
        ]
        usage = await analytics.client_usage(since=recent)
        used = sum(1 for _, talk in talks if talk.ids)
        return _Run(
            requests, used, seconds, stats, summaries, usage, await client_names(), outcomes
        )

    stored = [0]  # requests MongoDB acknowledged, for the line an interrupt prints
    result = run(
        settings, work, done=lambda: f"{stored[0]} of {requests} requests recorded and stored"
    )
    if as_json:
        print_json(
            {
                "recorded": result.recorded,
                "written": result.stats.written,
                "seconds": round(result.seconds, 3),
                "sessions": [
                    {
                        "session_key": s.session_key,
                        "llm_client": name_of(result.names, s.llm_client_id),
                        "requests": s.requests,
                        "first_at": format_time(s.first_at),
                        "last_at": format_time(s.last_at),
                    }
                    for s in result.summaries
                ],
                "usage": [
                    {"llm_client": u.name, "requests": u.requests, "sessions": u.sessions}
                    for u in result.usage
                ],
                "responses": dict(sorted(result.outcomes.items())),
            }
        )
        return
    console = settings.console
    rate = result.recorded / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"recorded {plural(result.recorded, 'request')} in {plural(result.sessions, 'session')} "
        "through the recorder "
        f"in {result.seconds:.2f} s ({rate:,.0f}/s; {result.stats.written:,} written, "
        f"{result.stats.retried:,} retried), spread over the last {_DAYS} days",
        markup=False,
    )
    console.print(_outcome_line(result.outcomes), markup=False)
    console.print()
    rows = [
        {
            "session_key": s.session_key,
            "llm_client": name_of(result.names, s.llm_client_id),
            "requests": s.requests,
            "first_at": s.first_at,
            "last_at": s.last_at,
        }
        for s in result.summaries
    ]
    shown = rows[:_SHOWN]
    title = "sessions of this run" + (
        f" (the {len(shown)} most recent of {len(rows)}; `llmreq sessions` lists more)"
        if len(rows) > len(shown)
        else ""
    )
    print_sessions(console, shown, title=title)
    console.print()
    console.print(
        bar_chart(
            f"requests per client (last {_DAYS} days)",
            [(u.name or str(u.llm_client_id), u.requests) for u in result.usage],
            headers=("client", "requests"),
        )
    )
    console.print()
    if rows:
        console.print(f"next: llmreq show {rows[0]['session_key']}", markup=False)


def _outcome_line(outcomes: Counter[str]) -> str:
    """``responses: 180 answered, 52 streamed, 1 cut stream, 5 with status 429, ...``."""
    parts = [
        f"{outcomes['answered']:,} answered",
        f"{outcomes['streamed']:,} streamed",
    ]
    if outcomes["cut"]:
        parts.append(plural(outcomes["cut"], "cut stream"))
    failed = sorted(k for k in outcomes if k.isdigit())
    parts += [f"{outcomes[k]:,} with status {k}" for k in failed]
    if outcomes["unreachable"]:
        parts.append(f"{outcomes['unreachable']:,} upstream unreachable")
    return "responses: " + ", ".join(parts)
