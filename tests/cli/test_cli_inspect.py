"""``clients``, ``sessions``, ``show``, ``stats`` and ``aggregate``."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from bson import ObjectId
from clitools import UTC, chat, export_record, write_jsonl

BOT = (ObjectId(), "support-bot")
CODER = (ObjectId(), "coder")
NOW = dt.datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.replace(hour=0, minute=0, second=0)


def today(step: int) -> dt.datetime:
    """An instant of today (UTC) that is already past, later for a larger step."""
    return TODAY + (NOW - TODAY) * step / 10


@pytest.fixture
def seeded(cli, tmp_path):
    """Two clients, three sessions over two days, a request with no session, a rollup."""
    yesterday = TODAY - dt.timedelta(hours=12)  # always the day before today, in UTC
    first = chat(("system", "Be brief."), ("user", "How do I reset my password?"))
    second = chat(
        ("system", "Be brief."),
        ("user", "How do I reset my password?"),
        ("assistant", "Use the sign-in page."),
        ("user", "Thanks! And my [bold]order[/bold]?"),
    )
    records = [
        export_record(created_at=yesterday, client=BOT, session_key="alpha", request=first),
        export_record(
            created_at=yesterday + dt.timedelta(minutes=5),
            client=BOT,
            session_key="alpha",
            request=second,
        ),
        export_record(
            created_at=today(1),
            client=CODER,
            session_key="beta",
            request={"prompt": "def f(): ..."},
        ),
        export_record(
            created_at=today(2),
            client=CODER,
            session_key="gamma",
            request=chat(("user", [{"type": "text", "text": "Look:"}, {"type": "image_url"}])),
        ),
        export_record(created_at=today(3), client=CODER, session_key=None),
        export_record(
            created_at=today(4),
            client=CODER,
            session_key="delta",
            request={"count": 2},
            is_aggregation=True,
        ),
    ]
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", records)))
    cli.db["llm_clients"].insert_one(
        {
            "_id": ObjectId(),
            "name": "idle",
            "description": "no requests",
            "metadata": {},
            "created_at": TODAY,
            "updated_at": TODAY,
        }
    )
    return yesterday


def test_clients(cli, seeded):
    rows = {r["name"]: r for r in cli.json("clients")}
    assert set(rows) == {"support-bot", "coder", "idle"}
    assert rows["support-bot"]["requests"] == 2 and rows["support-bot"]["sessions"] == 1
    assert rows["coder"]["requests"] == 3 and rows["coder"]["sessions"] == 2
    assert rows["idle"]["requests"] == 0 and rows["idle"]["last_at"] is None
    assert rows["coder"]["id"] == str(CODER[0])
    assert json.loads(cli("--json", "clients").stdout) == cli.json("clients")  # global --json
    text = cli("clients").stdout
    assert "support-bot" in text and "idle" in text and "no requests" in text


def test_clients_on_an_empty_store(cli):
    assert cli.json("clients") == []
    assert "no LLM clients yet" in cli("clients").stdout


def test_sessions(cli, seeded):
    rows = cli.json("sessions")
    assert [r["session_key"] for r in rows] == ["gamma", "beta", "alpha"]
    alpha = rows[2]
    assert alpha["llm_client"] == "support-bot" and alpha["requests"] == 2
    assert [r["session_key"] for r in cli.json("sessions", "--client", "coder")] == [
        "gamma",
        "beta",
    ]
    since_today = TODAY.isoformat().replace("+00:00", "Z")
    assert len(cli.json("sessions", "--since", since_today)) == 2
    assert [
        r["session_key"] for r in cli.json("sessions", "--until", TODAY.date().isoformat())
    ] == ["alpha"]
    assert len(cli.json("sessions", "--limit", "1")) == 1
    text = cli("sessions").stdout
    assert "alpha" in text and "support-bot" in text


def test_show_is_a_timeline_of_new_messages(cli, seeded):
    out = cli("show", "alpha").stdout
    lines = out.splitlines()
    assert "support-bot" in lines[0] and "gpt-4o" in lines[0]
    assert lines[1].split() == ["system", "Be", "brief."]
    assert "How do I reset my password?" in lines[2]
    # The second request resends the conversation: only what is new is shown.
    assert "(+2 after 2 earlier messages)" in lines[3]
    assert "assistant" in lines[4] and "Use the sign-in page." in lines[4]
    assert "Thanks! And my [bold]order[/bold]?" in lines[5]  # markup is shown, not rendered
    assert len(lines) == 6
    gamma = cli("show", "gamma").stdout
    assert "Look: [image_url]" in gamma
    beta = cli("show", "beta").stdout
    assert '"prompt": "def f(): ..."' in beta  # not a chat request: the JSON


def test_show_json(cli, seeded):
    records = cli.json("show", "alpha")
    assert [r["request"]["messages"][-1]["content"] for r in records] == [
        "How do I reset my password?",
        "Thanks! And my [bold]order[/bold]?",
    ]
    assert records[0]["llm_client"] == {"id": str(BOT[0]), "name": "support-bot"}
    assert cli.json("show", "alpha", "--client", "support-bot") == records


def test_show_unknown_session(cli, seeded):
    result = cli("show", "nope", ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no requests in session 'nope'; `llmreq sessions` lists the sessions\n"
    )
    other = cli("show", "alpha", "--client", "coder", ok=False)
    assert other.exit_code == 1 and "of client 'coder'" in other.stderr


def test_stats_by_day_with_empty_days(cli, seeded):
    buckets = cli.json("stats", "--since", "3d")
    assert len(buckets) in (4, 5)  # three days ago to today, in whole days
    counts = {b["start"][:10]: b["count"] for b in buckets}
    assert counts[TODAY.date().isoformat()] == 3
    assert counts[(TODAY - dt.timedelta(days=1)).date().isoformat()] == 2
    assert sum(counts.values()) == 5  # the rollup is not counted
    assert counts[(TODAY - dt.timedelta(days=2)).date().isoformat()] == 0
    assert sum(b["count"] for b in cli.json("stats", "--client", "coder", "--since", "3d")) == 3
    assert sum(b["count"] for b in cli.json("stats", "--session", "alpha", "--since", "3d")) == 2


def test_stats_chart_and_time_zone(cli, seeded):
    out = cli("stats", "--since", "2d", "--tz", "Asia/Tokyo").stdout
    assert "requests per day (time zone Asia/Tokyo): 5 in all" in out
    assert "█" in out
    hourly = cli.json("stats", "--by", "hour", "--since", "36h", "--tz", "Asia/Kolkata")
    # Times are UTC with Z, like every time the CLI prints: hours of a zone at
    # +05:30 start at half past in UTC.
    assert all(b["start"].endswith(":30:00.000Z") for b in hourly)
    assert sum(b["count"] for b in hourly) == 5


def test_stats_refuses_bad_input(cli):
    result = cli("stats", "--tz", "Mars/Olympus", ok=False)
    assert result.exit_code == 1 and "is not a known time zone" in result.stderr
    bad = cli("stats", "--since", "2026-01-02", "--until", "2026-01-01", ok=False)
    assert bad.exit_code == 1 and "must be before --until" in bad.stderr
    assert cli("stats", "--by", "week", ok=False).exit_code == 2  # Typer's usage error


def test_aggregate(cli, seeded):
    # A fixed window: the same window twice is the same rollup ("now" would move).
    since = (TODAY - dt.timedelta(days=1)).date().isoformat()
    until = (TODAY + dt.timedelta(days=1)).date().isoformat()
    first = cli.json("aggregate", "--since", since, "--until", until)
    assert first["sessions"] == 3 and first["created"] == 3
    assert first["since"] == f"{since}T00:00:00.000Z"
    again = cli.json("aggregate", "--since", since, "--until", until)
    assert again["created"] == 0 and again["unchanged"] == 3
    assert cli.requests.count_documents({"is_aggregation": True}) == 4  # 3 + the seeded one
    text = cli("aggregate", "--since", since, "--until", until, "--client", "coder").stdout
    assert text.startswith("rolled up 2 sessions of ")
    missing = cli("aggregate", "--until", until, ok=False)
    assert missing.exit_code == 2


@pytest.fixture
def old_and_new(cli, tmp_path):
    """One session 40 days ago and one an hour ago, of the same client."""
    now = dt.datetime.now(UTC)
    records = [
        export_record(
            created_at=now - dt.timedelta(days=40, minutes=m), client=BOT, session_key="old"
        )
        for m in (2, 1)
    ]
    records.append(
        export_record(created_at=now - dt.timedelta(hours=1), client=BOT, session_key="new")
    )
    cli("import", str(write_jsonl(tmp_path / "old.jsonl", records)))


def test_clients_counts_the_last_30_days_by_default(cli, old_and_new):
    (row,) = cli.json("clients")
    assert row["requests"] == 1 and row["sessions"] == 1
    (row,) = cli.json("clients", "--since", "60d")
    assert row["requests"] == 3 and row["sessions"] == 2
    assert "requests in the last 30d (--since)" in cli("clients").stdout
    (row,) = cli.json("clients", "--since", "60d", "--until", "30d")
    assert row["requests"] == 2


def test_sessions_lists_the_last_7_days_by_default(cli, old_and_new):
    assert [s["session_key"] for s in cli.json("sessions")] == ["new"]
    assert [s["session_key"] for s in cli.json("sessions", "--since", "60d")] == ["new", "old"]
