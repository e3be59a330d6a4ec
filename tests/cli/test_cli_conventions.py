"""Click conventions: flags, ``--version``, short usage errors, defaults, truncation notes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from importlib.metadata import version

import pytest
from bson import ObjectId
from clitools import UTC, export_record, write_jsonl

BOT = (ObjectId(), "support-bot")


def _llmreq(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "llmreq_mongo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version():
    proc = _llmreq("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"llmreq {version('llmreq-mongo')}\n"


def test_help_shows_flags_as_flags():
    text = _llmreq("--help").stdout
    assert "<bool>" not in text
    flags = [line.split()[0] for line in text.splitlines() if line.strip().startswith("--")]
    assert {"--json", "--debug", "--version"} <= set(flags)
    assert "<bool>" not in _llmreq("sessions", "--help").stdout


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (("sessions", "--limit", "x"), "error: Invalid value for '--limit'", "llmreq sessions"),
        (("--jsn", "clients"), "error: No such option: --jsn", "llmreq"),
        (("retention", "set"), "error: Missing argument", "llmreq retention set"),
        (("nosuchcommand",), "error: No such command", "llmreq"),
        (("stats", "--by", "week"), "error: Invalid value for '--by'", "llmreq stats"),
    ],
)
def test_usage_errors_are_short_and_exit_2(args, message, hint):
    proc = _llmreq(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 3, proc.stderr
    assert lines[0].startswith(message), lines
    assert lines[-1] == f"Try '{hint} --help' for help."
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
    assert proc.stdout == ""


def test_global_json_flag_before_the_command(cli):
    assert cli("--json", "clients").stdout.strip() == "[]"


def test_out_of_range_times_are_one_line_errors(cli):
    for option in ("--since", "--until"):
        for command in (("sessions",), ("stats",), ("export", "-o", "-")):
            result = cli(*command, option, "0001-01-01T00:00:00+14:00", ok=False)
            assert result.exit_code == 1, (command, option, result.stderr)
            lines = result.stderr.splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith(f"error: {option} '0001-01-01T00:00:00+14:00' is out of")
    result = cli("aggregate", "--since", "9999-12-31T23:00:00-05:00", ok=False)
    assert result.exit_code == 1 and "is out of range" in result.stderr


def test_stats_on_an_empty_window_lists_every_bucket(cli):
    days = cli.json("stats")
    assert len(days) == 15  # 14 days back from now: the partial first day and today
    assert all(b["count"] == 0 for b in days)
    assert days[-1]["start"] == dt.datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000Z")
    hours = cli.json("stats", "--by", "hour")
    assert len(hours) in (24, 25) and all(b["count"] == 0 for b in hours)
    text = cli("stats").stdout
    assert "0 in all" in text
    assert dt.datetime.now(UTC).strftime("%Y-%m-%d") in text


def test_stats_json_times_are_utc_milliseconds_z(cli, tmp_path):
    now = dt.datetime.now(UTC)
    cli(
        "import",
        str(write_jsonl(tmp_path / "s.jsonl", [export_record(created_at=now, client=BOT)])),
    )
    buckets = cli.json("stats", "--tz", "Asia/Tokyo", "--since", "2d")
    assert all(b["start"].endswith(".000Z") for b in buckets)
    assert sum(b["count"] for b in buckets) == 1


def test_aggregate_until_defaults_to_now(cli, tmp_path):
    now = dt.datetime.now(UTC)
    records = [
        export_record(created_at=now - dt.timedelta(minutes=m), client=BOT, session_key="a")
        for m in (5, 3)
    ]
    cli("import", str(write_jsonl(tmp_path / "s.jsonl", records)))
    result = cli.json("aggregate", "--since", "1h")
    assert result["sessions"] == 1 and result["created"] == 1
    until = dt.datetime.fromisoformat(result["until"].replace("Z", "+00:00"))
    assert abs((until - dt.datetime.now(UTC)).total_seconds()) < 60


def test_sessions_says_when_it_truncates(cli, tmp_path):
    now = dt.datetime.now(UTC)
    records = [
        export_record(created_at=now - dt.timedelta(minutes=i), client=BOT, session_key=f"s{i}")
        for i in range(25)
    ]
    cli("import", str(write_jsonl(tmp_path / "s.jsonl", records)))
    lines = cli("sessions").stdout.strip().splitlines()
    assert lines[-1] == "showing 20 of 25 (--limit)"
    assert "showing" not in cli("sessions", "--limit", "25").stdout
    assert cli("sessions", "--limit", "5").stdout.strip().splitlines()[-1] == (
        "showing 5 of 25 (--limit)"
    )
    assert len(cli.json("sessions")) == 20  # JSON stays a plain list
