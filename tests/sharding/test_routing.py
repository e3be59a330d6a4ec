"""Every command the library sends is routable on the chosen shard key (a simulation).

A representative scenario runs on a real server with a command listener on
the client: writes through ``objects.create`` and the recorder (one insert
failing once and retried), session history and its pages, a client's latest
calls, every report, the rollups, saves and replaces of one record,
``QuerySet.update``/``delete``, a cascade delete, a change stream as ``tail``
opens it, and the command line (demo, inspection, export, import, prune,
retention, aggregate, shard) run in-process. The router model
(``_router.py``) then judges each captured command for the shard key of
``llmreq_mongo._sharding``; any command mongos would refuse fails the test,
and the table of where the commands go is printed (docs/scaling.md shows it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, monitoring
from typer.testing import CliRunner

from llmreq_mongo import LLMClient, LLMClientRequest, Recorder, aggregate_sessions, analytics, init
from llmreq_mongo._cli import app
from llmreq_mongo._sharding import SHARD_KEY
from llmreq_mongo.pytest_plugin import TestServer

from ._capture import CommandCapture, routing_table, verdicts
from ._router import Route, RouterModel

UTC = dt.timezone.utc
CANDIDATES: list[dict[str, object]] = [
    {"session_key": "hashed"},
    {"llm_client_id": 1, "created_at": 1},
    {"llm_client_id": 1, "session_key": 1, "_id": 1},
    {"llm_client_id": 1, "session_key": "hashed"},
]
APP_NAME = "llmreq-sharding-sim"

#: One listener for the whole process: the command line builds its own
#: client, and a listener registered globally is the only way to see what
#: it sends. It is registered when the scenario first runs (PyMongo cannot
#: unregister one), so clients made earlier in the session never carry it,
#: and it keeps nothing outside a labelled operation.
CAPTURE = CommandCapture()
_registered: list[bool] = []


def chat(text: str) -> dict[str, object]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


@pytest.fixture
async def sim(
    llmreq_engine: TestServer,
) -> AsyncIterator[tuple[AsyncMongoClient[dict[str, object]], str]]:
    if not _registered:
        monitoring.register(CAPTURE)
        _registered.append(True)
    name = f"llmreq_shard_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        llmreq_engine.uri, appname=APP_NAME, tz_aware=True
    )
    await init(client, database=name)
    CAPTURE.commands.clear()
    try:
        yield client, name
    finally:
        CAPTURE.commands.clear()
        await client.drop_database(name)
        await client.close()


def cli(uri: str, database: str, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["--uri", uri, "--database", database, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


async def run_scenario(
    client: AsyncMongoClient[dict[str, object]], name: str, uri: str, tmp: Path
) -> None:
    op = CAPTURE.operation
    with op("create clients (llm_clients)"):
        bot = await LLMClient.objects.create(name="support-bot")
        other = await LLMClient.objects.create(name="search-bot")
    with op("objects.create"):
        for i in range(6):
            await LLMClientRequest.objects.create(
                llm_client=bot, request=chat(f"q{i}"), session_key=f"s{i % 2}"
            )
        await LLMClientRequest.objects.create(llm_client=other, request=chat("no session"))
    await client.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": ["insert"], "errorCode": 6, "appName": APP_NAME},
    )
    with op("recorder bulk insert (one retry)"):
        async with Recorder(max_batch=100, flush_interval=0.01) as recorder:
            for i in range(40):
                recorder.record(bot, chat(f"r{i}"), session_key=f"s{i % 4}")
            recorder.record(other, chat("sessionless"))
            await recorder.flush()
    with op("session history, client known"):
        history = await LLMClientRequest.objects.for_session("s1", llm_client=bot).to_list()
        assert history
    with op("session history, client not given"):
        await LLMClientRequest.objects.for_session("s1").to_list()
    with op("session pages (client known)"):
        first = await LLMClientRequest.objects.for_session("s1", llm_client=bot).page(size=5)
        assert first.next_cursor is not None
        await LLMClientRequest.objects.for_session("s1", llm_client=bot).page(
            size=5, after=first.next_cursor
        )
    with op("a client's latest calls"):
        await bot.llmclientrequests.order_by("-created_at").limit(10).to_list()
        await bot.llmclientrequests.page(size=10)
        await bot.llmclientrequests.count()
    now = dt.datetime.now(UTC)
    since, until = now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1)
    with op("reports over a window"):
        await analytics.session_summaries(since=since, until=until)
        await analytics.top_sessions(since=since, until=until)
        await analytics.request_counts(by="hour", since=since, until=until)
        await analytics.client_usage(since=since, until=until)
    with op("reports for one client"):
        await analytics.session_summaries(llm_client=bot, since=since, until=until)
        await analytics.request_counts(by="hour", llm_client=bot, since=since, until=until)
    with op("reports for one session"):
        await analytics.request_counts(by="hour", llm_client=bot, session_key="s1")
    with op("rollups (aggregate_sessions)"):
        made = await aggregate_sessions(since=since, until=until)
        assert made.created > 0
        await LLMClientRequest.objects.create(
            llm_client=bot, request=chat("late"), session_key="s1"
        )
        again = await aggregate_sessions(since=since, until=until)
        assert again.updated == 1
    with op("save / replace / delete one record"):
        doc = (await LLMClientRequest.objects.for_session("s0", llm_client=bot).to_list())[0]
        doc.request = chat("edited")
        await doc.save()
        doc.session_key = "s0-moved"  # a new shard key value
        await doc.save()
        doc.request = chat("replaced")
        await doc.replace()
        await doc.set({LLMClientRequest.is_aggregation: False})
        await doc.delete()
    assert await LLMClientRequest.objects.filter(id=doc.id).count() == 0
    with op("QuerySet.update"):
        await LLMClientRequest.objects.filter(llm_client_id=bot.id, session_key="s2").update(
            request=chat("redacted")
        )
        moved = await LLMClientRequest.objects.filter(
            llm_client_id=bot.id, session_key="s3"
        ).update(session_key="s3-renamed")
    assert moved == await LLMClientRequest.objects.filter(session_key="s3-renamed").count() > 0
    with op("QuerySet.delete"):
        await LLMClientRequest.objects.filter(llm_client_id=bot.id, session_key="s2").delete()
    with op("tail (change stream through mongos)"):
        coll = LLMClientRequest.get_pymongo_collection()
        stream = await coll.watch([{"$match": {"operationType": {"$eq": "insert"}}}])
        await stream.try_next()
        await stream.close()

    # The command line, in-process (its own client, seen by the global listener).
    export = tmp / "export.jsonl"
    steps: list[tuple[str, tuple[str, ...]]] = [
        ("CLI demo (recorder)", ("demo", "--requests", "30", "--sessions", "3")),
        ("CLI clients / sessions / show / stats", ("clients",)),
        ("CLI clients / sessions / show / stats", ("sessions", "--client", "support-bot")),
        ("CLI clients / sessions / show / stats", ("show", "s1", "--client", "support-bot")),
        ("CLI clients / sessions / show / stats", ("stats", "--by", "hour")),
        ("CLI export", ("export", "-o", str(export))),
        ("CLI import (ids already present)", ("import", str(export))),
        ("CLI aggregate", ("aggregate", "--since", "1h", "--until", "now")),
        ("CLI retention set / show / off", ("retention", "set", "30d")),
        ("CLI retention set / show / off", ("retention", "show")),
        ("CLI retention set / show / off", ("retention", "off")),
        ("CLI shard (not mongos)", ("shard",)),
    ]
    for label, args in steps:
        with op(label):
            await asyncio.to_thread(cli, uri, name, *args)
    await asyncio.sleep(1.1)  # so that `prune --older-than 1s` has records to delete
    with op("CLI prune"):
        out = await asyncio.to_thread(cli, uri, name, "prune", "--older-than", "1s", "--yes")
        assert "deleted" in out
    await init(client, database=name)  # the command line rebound the documents
    with op("cascade delete (client.delete)"):
        await (await LLMClient.objects.get(name="search-bot")).delete()


async def test_every_command_is_routable_on_the_shard_key(
    sim: tuple[AsyncMongoClient[dict[str, object]], str], llmreq_engine: TestServer, tmp_path: Path
) -> None:
    client, name = sim
    await run_scenario(client, name, llmreq_engine.uri, tmp_path)
    model = RouterModel(SHARD_KEY)
    judged = verdicts(model, CAPTURE.commands)
    print("\nshard key:", SHARD_KEY)
    print(routing_table(model, CAPTURE.commands))
    print("\nbroadcast commands, by the rule that sends them to every shard:")
    for line in sorted(
        {f"- {c.operation}: {c.name} ({v.rule})" for c, v in judged if v.route is Route.ALL}
    ):
        print(line)
    print("\nthe same commands under each candidate key (library statements only):")
    for key in CANDIDATES:
        counts = Counter(
            v.route
            for c, v in verdicts(RouterModel(key), CAPTURE.commands)
            if not c.operation.startswith("CLI")
        )
        cells = ", ".join(
            f"{r.value}: {counts[r]}" for r in (Route.ONE, Route.FEW, Route.ALL, Route.INVALID)
        )
        print(f"- {key}: {cells}")
    invalid = [
        (c.operation, c.name, v.rule, c.command) for c, v in judged if v.route is Route.INVALID
    ]
    assert not invalid, "\n".join(map(str, invalid))
    by_op: dict[str, set[Route]] = {}
    for c, v in judged:
        by_op.setdefault(c.operation, set()).add(v.route)
    # The retried insert was captured twice: the retry is routed like the first try.
    inserts = [
        c for c in CAPTURE.commands if c.operation.startswith("recorder") and c.name == "insert"
    ]
    assert len(inserts) >= 2
    # What the key was chosen for: these never go to every shard.
    for operation in (
        "objects.create",
        "session history, client known",
        "session pages (client known)",
        "a client's latest calls",
        "reports for one client",
        "reports for one session",
        "save / replace / delete one record",
        "QuerySet.update",
        "QuerySet.delete",
        "cascade delete (client.delete)",
    ):
        assert Route.ALL not in by_op[operation], operation
    # And these are scatter-gather by nature (no client or session to target).
    assert Route.ALL in by_op["session history, client not given"]
    assert Route.ALL in by_op["reports over a window"]
    assert Route.ALL in by_op["tail (change stream through mongos)"]
