"""``retention set/show/off`` (a TTL on the created_at index) and ``prune``."""

from __future__ import annotations

import datetime as dt
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bson import ObjectId
from clitools import UTC, export_record, write_jsonl

if TYPE_CHECKING:
    from conftest import Cli

BOT = (ObjectId(), "support-bot")
CODER = (ObjectId(), "coder")


def _created_at_index(cli):
    info = cli.requests.index_information()
    found = {name: spec for name, spec in info.items() if spec["key"] == [("created_at", 1)]}
    assert len(found) == 1, info  # never a second index on the same key
    return found


def test_retention_set_show_change_off(cli):
    assert cli.json("retention", "show") == {"retention": None, "expire_after_seconds": None}
    assert "retention: off" in cli("retention", "show").stdout

    result = cli.json("retention", "set", "90d")
    assert result == {"retention": "90d", "expire_after_seconds": 7776000, "previous": None}
    index = _created_at_index(cli)
    assert list(index) == ["llmreq_created_at"]
    assert index["llmreq_created_at"]["expireAfterSeconds"] == 7776000
    assert "(unchanged)" in cli("retention", "set", "2160h").stdout  # the same, written otherwise

    # Changed in place: the same index, a new expiry.
    assert cli.json("retention", "set", "12h")["previous"] == "90d"
    assert _created_at_index(cli)["llmreq_created_at"]["expireAfterSeconds"] == 43200
    assert cli.json("retention", "show") == {"retention": "12h", "expire_after_seconds": 43200}

    # Off: the index the time-window queries need stays, without a TTL.
    assert cli.json("retention", "off")["previous"] == "12h"
    spec = _created_at_index(cli)["llmreq_created_at"]
    assert "expireAfterSeconds" not in spec
    assert set(cli.requests.index_information()) == {
        "_id_",
        "llmreq_session_time",
        "llmreq_client_time",
        "llmreq_created_at",
        "llmreq_updated_at",
    }
    assert "already off" in cli("retention", "off").stdout
    assert cli.json("retention", "show")["retention"] is None


def test_retention_refuses_bad_durations(cli):
    for bad, message in [
        ("90", "is not a duration"),
        ("ninety days", "is not a duration"),
        ("0d", "is zero"),
        ("100y", "is not a duration"),
        ("30000d", "longer than MongoDB allows"),
    ]:
        result = cli("retention", "set", bad, ok=False)
        assert result.exit_code == 1, bad
        assert result.stderr.startswith("error: retention") and message in result.stderr, bad
        assert len(result.stderr.splitlines()) == 1
    assert cli.db.list_collection_names() == []  # refused before connecting at all


def _seed(cli: Cli, tmp_path: Path) -> set[str]:
    now = dt.datetime.now(UTC)
    old = [
        export_record(created_at=now - dt.timedelta(days=100, minutes=i), client=BOT)
        for i in range(5)
    ]
    old.append(export_record(created_at=now - dt.timedelta(days=95), client=CODER))
    # Two sharing one millisecond, at a batch edge.
    twin = now - dt.timedelta(days=91)
    old += [export_record(created_at=twin, client=CODER) for _ in range(2)]
    recent = [
        export_record(created_at=now - dt.timedelta(days=89), client=BOT),
        export_record(created_at=now - dt.timedelta(hours=1), client=CODER),
    ]
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", old + recent)))
    return {r["id"] for r in recent}


def test_prune_dry_run_then_for_real_in_batches(cli, tmp_path):
    recent = _seed(cli, tmp_path)
    dry = cli.json("prune", "--older-than", "90d", "--dry-run")
    assert dry["dry_run"] is True and dry["matched"] == 8 and dry["deleted"] == 0
    assert dry["by_client"] == [
        {"llm_client": "support-bot", "requests": 5},
        {"llm_client": "coder", "requests": 3},
    ]
    assert cli.requests.count_documents({}) == 10

    text = cli("prune", "--older-than", "90d", "--batch-size", "3", "--yes").stdout
    assert "support-bot" in text and "coder" in text
    assert "deleted 8 requests older than " in text and " in 3 batches" in text
    assert {str(d["_id"]) for d in cli.requests.find()} == recent

    assert "nothing to prune" in cli("prune", "--older-than", "90d", "--yes").stdout
    assert cli.json("prune", "--older-than", "2h", "--yes")["deleted"] == 1


def test_prune_refuses_a_bad_duration(cli):
    result = cli("prune", "--older-than", "soon", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --older-than 'soon' is not a duration")


def test_prune_without_a_terminal_refuses_unless_yes(cli, tmp_path):
    _seed(cli, tmp_path)
    result = cli("prune", "--older-than", "90d", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: prune deletes requests and there is no terminal")
    assert "--yes" in result.stderr and len(result.stderr.splitlines()) == 1
    assert cli.requests.count_documents({}) == 10
    assert cli.json("prune", "--older-than", "90d", "--dry-run")["matched"] == 8  # no --yes needed


def _prune_on_a_terminal(cli: Cli, answer: str) -> tuple[int, str]:
    """Run the real ``llmreq prune`` with a pseudo-terminal as stdin, answering ``answer``."""
    return _on_a_terminal(cli, answer, "prune", "--older-than", "90d")


def _on_a_terminal(cli: Cli, answer: str, *args: str) -> tuple[int, str]:
    """Run the real ``llmreq ARGS`` with a pseudo-terminal as stdin, answering ``answer``."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmreq_mongo", "--uri", cli.uri, "--database", cli.database, *args],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(follower)
    try:
        os.write(leader, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    return proc.returncode, out + err


def test_prune_on_a_terminal_asks_first(cli, tmp_path):
    _seed(cli, tmp_path)
    code, text = _prune_on_a_terminal(cli, "n")
    assert code == 1, text
    assert "delete 8 requests older than" in text and "nothing deleted" in text
    assert cli.requests.count_documents({}) == 10

    code, text = _prune_on_a_terminal(cli, "y")
    assert code == 0, text
    assert "deleted 8 requests" in text
    assert cli.requests.count_documents({}) == 2


def test_retention_that_deletes_records_now_needs_yes_without_a_terminal(
    cli: Cli, tmp_path: Path
) -> None:
    _seed(cli, tmp_path)
    result = cli("retention", "set", "1s", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: a retention of 1s would delete 10 existing requests and there is no terminal"
    )
    assert "--yes" in result.stderr and len(result.stderr.splitlines()) == 1
    assert cli.json("retention", "show")["retention"] is None
    # Longer than the oldest record: nothing goes now, nothing to confirm.
    assert cli.json("retention", "set", "365d")["retention"] == "365d"
    # Shorter than some: refused again, and the retention stays as it was.
    assert cli("retention", "set", "90d", ok=False).exit_code == 1
    assert cli.json("retention", "show")["retention"] == "365d"
    assert cli.json("retention", "set", "--yes", "90d")["retention"] == "90d"
    # Longer again: it deletes nothing the current one keeps.
    assert cli.json("retention", "set", "95d")["retention"] == "95d"
    assert cli.requests.count_documents({}) == 10  # the TTL monitor had no time to run


def test_retention_on_a_terminal_asks_first(cli: Cli, tmp_path: Path) -> None:
    _seed(cli, tmp_path)
    code, text = _on_a_terminal(cli, "n", "retention", "set", "90d")
    assert code == 1, text
    assert "makes MongoDB delete 8 existing requests" in text and "retention unchanged" in text
    assert cli.json("retention", "show")["retention"] is None

    code, text = _on_a_terminal(cli, "y", "retention", "set", "90d")
    assert code == 0, text
    assert "retention: 90d (changed from off)" in text
