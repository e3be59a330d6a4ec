"""``llmreq demo``: through the recorder, on a server and on the embedded default store."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

from llmreq_mongo._cli._demo import _PERSONAS


def test_demo_records_through_the_recorder(cli):
    result = cli.json("demo", "--requests", "60", "--sessions", "6")
    assert result["recorded"] == 60 and result["written"] == 60
    assert len(result["sessions"]) == 6
    assert sum(s["requests"] for s in result["sessions"]) == 60
    assert {u["llm_client"] for u in result["usage"]} == {
        "support-bot",
        "code-assistant",
        "summarizer",
    }
    assert cli.requests.count_documents({}) == 60
    # Realistic chat payloads: each request resends the conversation so far.
    doc = cli.requests.find_one({"request.messages.2": {"$exists": True}})
    roles = [m["role"] for m in doc["request"]["messages"]]
    assert roles[:4] == ["system", "user", "assistant", "user"]

    text = cli("demo", "--requests", "30", "--sessions", "12").stdout
    assert text.startswith("recorded 30 requests in 12 sessions through the recorder")
    assert "the 10 most recent of 12" in text
    assert "requests per client (last 7 days)" in text and "█" in text
    assert cli.requests.count_documents({}) == 90  # a second run adds to the store


def test_demo_answers_fit_their_questions(cli):
    cli.json("demo", "--requests", "90", "--sessions", "9")
    answer_to = {
        question: answer for persona in _PERSONAS for question, answer in persona.exchanges
    }
    checked = 0
    for doc in cli.requests.find():
        messages = doc["request"]["messages"]
        assert messages[-1]["role"] == "user"
        for asked, answered in itertools.pairwise(messages[1:]):
            if answered["role"] == "assistant":
                assert asked["role"] == "user"
                assert answered["content"] == answer_to[asked["content"]], asked["content"]
                checked += 1
    assert checked > 50


def test_demo_spreads_its_sessions_over_the_last_days(cli):
    result = cli.json("demo", "--requests", "120", "--sessions", "20")
    now = dt.datetime.now(dt.timezone.utc)
    docs = list(cli.requests.find())
    times = [d["created_at"] for d in docs]
    assert all(now - dt.timedelta(days=7, minutes=1) <= t <= now for t in times)
    assert max(times) - min(times) > dt.timedelta(days=1)
    assert len({t.date() for t in times}) >= 3
    assert all(d["updated_at"] == d["created_at"] for d in docs)
    # Within a session, the turns keep their order: a longer conversation is later.
    for key in {d["session_key"] for d in docs}:
        turns = sorted((d for d in docs if d["session_key"] == key), key=lambda d: d["created_at"])
        lengths = [len(d["request"]["messages"]) for d in turns]
        assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
        assert turns[-1]["created_at"] - turns[0]["created_at"] < dt.timedelta(hours=2)
    # The run's own report reads them back.
    assert len(result["sessions"]) == 20
    assert sum(s["requests"] for s in result["sessions"]) == 120
    assert sum(b["count"] for b in cli.json("stats", "--since", "8d")) == 120


def _llmreq(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMREQ_MONGODB_URI", "MONGODB_URI")}
    return subprocess.run(
        [sys.executable, "-m", "llmreq_mongo._cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_first_command_in_an_empty_directory(tmp_path):
    """``llmreq demo`` with no URI: the embedded engine, persistent in ./.llmreq-data."""
    first = _llmreq(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("recorded 240 requests in 40 sessions through the recorder")
    assert (tmp_path / ".llmreq-data").is_dir()
    # The store persists: a second command (a new engine process) sees it all.
    clients = _llmreq(tmp_path, "clients", "--json")
    assert clients.returncode == 0, clients.stderr
    rows = json.loads(clients.stdout)
    assert sum(r["requests"] for r in rows) == 240
    assert sum(r["sessions"] for r in rows) == 40
