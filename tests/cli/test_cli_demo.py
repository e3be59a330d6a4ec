"""``llmreq demo``: through the recorder, on a server and on the embedded default store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


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
    assert "requests per client (all time)" in text and "█" in text
    assert cli.requests.count_documents({}) == 90  # a second run adds to the store


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
