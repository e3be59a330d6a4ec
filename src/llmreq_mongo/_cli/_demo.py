"""``llmreq demo``: record realistic chat requests through the recorder, then report on them.

Three clients hold conversations: each session belongs to one client, and
every request resends the conversation so far plus a new user message, as
chat-completion clients do. The records go through :class:`~llmreq_mongo.Recorder`
(batched ``insert_many`` in the background), with a progress bar that moves
as MongoDB acknowledges each batch. Every answer is the one written for the
question before it.

Each session starts at its own moment of the last seven days and its turns
come 20 s to 3 min apart, recorded with those times (``created_at``, a
backfill), so ``sessions``, ``stats`` and ``show`` have days and hours to show.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from bson import ObjectId

from llmreq_mongo import analytics
from llmreq_mongo._connection import Handle
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._recording.recorder import Recorder, RecorderStats
from llmreq_mongo._time import now_ms

from ._app import JsonFlag, app, run, settings_of
from ._durations import format_time
from ._names import client_names, name_of
from ._render import bar_chart, plural, print_json, print_sessions

__all__ = ["demo"]

_SHOWN = 10
#: The sessions of a run are spread over this many days back from now.
_DAYS = 7
#: The latest a session starts: hours before now, so its turns stay in the past.
_TAIL = dt.timedelta(hours=3)
_MAX_SUMMARIES = 10_000


@dataclass(frozen=True)
class _Persona:
    name: str
    description: str
    models: tuple[str, ...]
    system: str
    #: What users ask, each with the answer the assistant gives to it.
    exchanges: tuple[tuple[str, str], ...]
    tools: bool = False


_PERSONAS = (
    _Persona(
        "support-bot",
        "answers customer tickets",
        ("gpt-4o-mini", "gpt-4o"),
        "You are a friendly support agent for an online store. Be brief.",
        (
            (
                "How do I reset my password?",
                "You can reset it from the sign-in page: choose 'Forgot password'.",
            ),
            (
                "My order #4821 has not arrived yet. Can you check?",
                "The parcel left our warehouse on Monday; tracking shows it arrives tomorrow.",
            ),
            (
                "What is the refund policy for annual plans?",
                "Annual plans are refundable within 30 days of purchase.",
            ),
            (
                "Can I change the delivery address after ordering?",
                "Yes, until the order ships: open the order and choose 'Edit address'.",
            ),
            (
                "The discount code SPRING25 is rejected at checkout.",
                "SPRING25 ended on 31 May; SUMMER20 gives 20% off until August.",
            ),
        ),
    ),
    _Persona(
        "code-assistant",
        "helps developers in the IDE",
        ("claude-sonnet-4", "gpt-4.1"),
        "You are a senior Python engineer. Answer with short code examples.",
        (
            (
                "Why does asyncio.run complain that an event loop is already running?",
                "Because the code already runs inside a loop; await the coroutine instead.",
            ),
            (
                "Write a pytest fixture that yields a temporary SQLite database.",
                "Use tmp_path and sqlite3.connect, then yield the connection and close it.",
            ),
            (
                "How do I read a 10 GB CSV file without running out of memory?",
                "Stream it: iterate over csv.reader on the open file, one row at a time.",
            ),
            (
                "Explain the difference between a list and a deque.",
                "A deque appends and pops at both ends in O(1); a list only at its end.",
            ),
            (
                "Refactor this function to use a dataclass instead of a dict.",
                "Declare @dataclass class Order: id: int; total: float, and return Order(...).",
            ),
        ),
        tools=True,
    ),
    _Persona(
        "summarizer",
        "summarises documents in batch",
        ("gpt-4o-mini",),
        "Summarise the user's text in three bullet points.",
        (
            (
                "Summarise: Q3 revenue grew 12% while support costs fell by a fifth...",
                "- Revenue up 12%\n- Support costs down 20%\n- Margin improved",
            ),
            (
                "Summarise: the incident began at 09:12 when a certificate expired...",
                "- Expired certificate at 09:12\n- 40 minutes of errors\n- Renewal automated",
            ),
            (
                "Summarise: the board approved the new office lease in Lyon...",
                "- New office in Lyon\n- Lease approved by the board\n- Move planned",
            ),
        ),
    ),
)

_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_python",
            "description": "Run a Python snippet and return its output.",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"code": {"type": "string"}},
                "required": ["code"],
            },
        },
    }
]


class _Conversation:
    """One session: a client, a model, and the messages so far."""

    def __init__(self, persona: _Persona, rng: random.Random) -> None:
        self.persona = persona
        self.key = secrets.token_hex(16)  # shaped like a Django session key
        self.model = rng.choice(persona.models)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": persona.system}]
        self.pending: str | None = None
        self.ids: list[ObjectId] = []
        # When its next turn happened: a start in the last days, hours before now.
        self.clock = now_ms() - dt.timedelta(
            seconds=rng.uniform(_TAIL.total_seconds(), dt.timedelta(days=_DAYS).total_seconds())
        )

    def next_time(self, rng: random.Random) -> dt.datetime:
        """The time of this session's next turn: 20 s to 3 min after the last one."""
        self.clock += dt.timedelta(seconds=rng.uniform(20, 180))
        return min(self.clock, now_ms())

    def next_request(self, rng: random.Random) -> dict[str, Any]:
        # The previous question gets its own answer before the next one is asked.
        if self.pending is not None:
            self.messages.append({"role": "assistant", "content": self.pending})
        asked = {m["content"] for m in self.messages if m["role"] == "user"}
        fresh = [e for e in self.persona.exchanges if e[0] not in asked]
        question, self.pending = rng.choice(fresh or self.persona.exchanges)
        self.messages.append({"role": "user", "content": question})
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in self.messages],
            "temperature": round(rng.uniform(0.0, 1.0), 2),
            "max_tokens": rng.choice([256, 512, 1024]),
            "stream": False,
        }
        if self.persona.tools:
            payload["tools"] = _TOOLS
        return payload


@dataclass(frozen=True)
class _Run:
    recorded: int
    seconds: float
    stats: RecorderStats
    summaries: list[analytics.SessionSummary]
    usage: list[analytics.ClientUsage]
    names: dict[Any, str]


@app.command()
def demo(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=1, max=1_000_000, help="Requests to record.")] = 240,
    sessions: Annotated[
        int, typer.Option(min=1, max=100_000, help="Sessions to spread them over.")
    ] = 40,
    json: JsonFlag = False,
) -> None:
    """Record realistic chat requests through the recorder, then show sessions and usage."""
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
        talks = [
            (clients[i % len(clients)], _Conversation(_PERSONAS[i % len(_PERSONAS)], rng))
            for i in range(sessions)
        ]
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

        def written(ids: list[Any]) -> None:
            stored[0] += len(ids)
            progress.advance(task, len(ids))

        clock = time.perf_counter()
        with progress:
            async with Recorder(max_batch=500, after_write=written) as recorder:
                for i in range(requests):
                    client, talk = talks[i % sessions] if i < sessions else rng.choice(talks)
                    talk.ids.append(
                        await recorder.arecord(
                            client,
                            talk.next_request(rng),
                            session_key=talk.key,
                            created_at=talk.next_time(rng),
                        )
                    )
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
        return _Run(requests, seconds, stats, summaries, usage, await client_names())

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
            }
        )
        return
    console = settings.console
    rate = result.recorded / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"recorded {plural(result.recorded, 'request')} in {plural(sessions, 'session')} "
        "through the recorder "
        f"in {result.seconds:.2f} s ({rate:,.0f}/s; {result.stats.written:,} written, "
        f"{result.stats.retried:,} retried), spread over the last {_DAYS} days",
        markup=False,
    )
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
