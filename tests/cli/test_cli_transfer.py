"""``llmreq export`` and ``llmreq import``: exact round trips, Django fixtures, bad lines."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson import DBRef, ObjectId
from clitools import UTC, export_record, write_jsonl
from typer.testing import CliRunner

from llmreq_mongo._cli import app

if TYPE_CHECKING:
    from conftest import Cli

T0 = dt.datetime(2026, 3, 2, 9, 30, 0, 123000, tzinfo=UTC)
BOT = (ObjectId(), "support-bot")
CODER = (ObjectId(), "coder")

# Payloads that are easy to get subtly wrong: awkward keys, big and float
# numbers, unicode, nulls, nesting, a non-object payload.
AWKWARD = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "a.b": {"%c": [1, 2.5, -0.0, 1e300, 2**62, None, True]},
    "text": 'héllo \u2603 \U0001f600 "quoted" \\ \n',
    "messages": [{"role": "user", "content": "Hi"}],
}


def _seed(cli, tmp_path: Path) -> Path:
    records = [
        export_record(created_at=T0, client=BOT, session_key="s1", request=AWKWARD),
        # Three records in the same millisecond: the order must still be fixed.
        *(
            export_record(
                created_at=T0 + dt.timedelta(seconds=1), client=CODER, session_key="s2", request=i
            )
            for i in range(3)
        ),
        export_record(
            created_at=T0 + dt.timedelta(hours=2), client=BOT, session_key=None, request=None
        ),
        export_record(
            created_at=T0 + dt.timedelta(days=1),
            client=BOT,
            session_key="s1",
            request=["x", {"y": None}],
            is_aggregation=True,
        ),
    ]
    records[1]["updated_at"] = "2026-03-05T00:00:00.999Z"
    path = write_jsonl(tmp_path / "seed.jsonl", records)
    cli("import", str(path))
    return path


def test_export_import_export_gives_identical_files(cli, sync_client, tmp_path):
    _seed(cli, tmp_path)
    first = tmp_path / "first.jsonl"
    cli("export", "-o", str(first))
    lines = first.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6

    # Into an empty database on the same server, then out again.
    other = f"{cli.database}_copy"
    try:
        copy = type(cli)(cli.uri, other, sync_client[other])
        assert copy.json("import", str(first))["imported"] == 6
        second = tmp_path / "second.jsonl"
        copy("export", "-o", str(second))
        assert second.read_bytes() == first.read_bytes()
        # The stored documents are the same too, escaped keys, DBRef and all.
        original = list(cli.requests.find({}, sort=[("_id", 1)]))
        copied = list(copy.requests.find({}, sort=[("_id", 1)]))
        assert copied == original
        assert "%24schema" in original[0]["request"]
        assert isinstance(original[0]["llm_client"], DBRef)
    finally:
        sync_client.drop_database(other)


def _started(cli, database: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """The real command on ``database`` of the test server, in its own process."""
    command = [sys.executable, "-m", "llmreq_mongo", "--uri", cli.uri, "--database", database]
    return subprocess.Popen([*command, *args], **popen)


def test_an_export_piped_into_an_import_copies_the_history(cli, sync_client, tmp_path):
    _seed(cli, tmp_path)
    other = f"{cli.database}_piped"
    try:
        export = _started(cli, cli.database, "export", "-o", "-", stdout=subprocess.PIPE)
        assert export.stdout is not None
        with export.stdout:
            imported = _started(
                cli,
                other,
                "import",
                "-",
                "--json",
                stdin=export.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = imported.communicate(timeout=120)
        assert export.wait(timeout=120) == 0
        assert imported.returncode == 0, err
        assert json.loads(out)["imported"] == 6
        original = list(cli.requests.find({}, sort=[("_id", 1)]))
        assert list(sync_client[other]["llm_client_requests"].find({}, sort=[("_id", 1)])) == (
            original
        )
    finally:
        sync_client.drop_database(other)


def test_import_from_standard_input_checks_every_line_first(cli):
    good = json.dumps(export_record(created_at=T0, client=BOT, session_key="s", request={}))
    result = CliRunner().invoke(
        app,
        ["--uri", cli.uri, "--database", cli.database, "import", "-"],
        input=f"{good}\n{{not json\n",
    )
    assert result.exit_code == 1
    assert "line 2:" in result.stderr and "nothing was imported" in result.stderr
    assert cli.requests.count_documents({}) == 0
    latin = CliRunner().invoke(
        app,
        ["--uri", cli.uri, "--database", cli.database, "import", "-", "--format", "django"],
        input=b'[{"x": "\xe9"}]',
    )
    assert latin.exit_code == 1 and "error: standard input is not UTF-8 text" in latin.stderr


def test_import_dash_from_a_terminal_says_to_pipe_an_export(cli):
    controller, terminal = os.openpty()
    try:
        proc = _started(cli, cli.database, "import", "-", stdin=terminal, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 1
    assert b"pipe an export into it" in err and b"Traceback" not in err


def test_export_line_format_is_exact(cli, tmp_path):
    _seed(cli, tmp_path)
    out = cli("export", "-o", "-").stdout.splitlines()
    first = json.loads(out[0])
    assert list(first) == [
        "id",
        "created_at",
        "updated_at",
        "llm_client",
        "session_key",
        "is_aggregation",
        "request",
        "response",
    ]
    assert first["response"] is None
    assert first["created_at"] == "2026-03-02T09:30:00.123Z"
    assert first["llm_client"] == {"id": str(BOT[0]), "name": "support-bot"}
    assert first["request"] == AWKWARD
    assert out[0] == json.dumps(first, ensure_ascii=False, separators=(",", ":"))
    # (created_at, id) order, ties included.
    tied = [json.loads(line)["id"] for line in out[1:4]]
    assert tied == sorted(tied)
    assert json.loads(out[1])["updated_at"] == "2026-03-05T00:00:00.999Z"


def test_export_filters(cli, tmp_path):
    _seed(cli, tmp_path)

    def ids(*args: str) -> int:
        return len(cli("export", "-o", "-", *args).stdout.splitlines())

    assert ids("--client", "coder") == 3
    assert ids("--session", "s1") == 2
    assert ids("--since", "2026-03-02T10:00:00Z") == 2
    assert ids("--until", "2026-03-02T09:30:01Z") == 1
    assert ids("--since", "2026-03-02", "--until", "2026-03-03") == 5
    assert ids("--client", "coder", "--session", "s1") == 0


def test_export_csv(cli, tmp_path):
    _seed(cli, tmp_path)
    target = tmp_path / "out.csv"
    summary = cli.json("export", "--format", "csv", "-o", str(target))
    assert summary == {"exported": 6, "file": str(target), "format": "csv"}
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert len(rows) == 6
    assert rows[0]["llm_client_name"] == "support-bot"
    assert json.loads(rows[0]["request"]) == AWKWARD
    assert rows[4]["session_key"] == "" and rows[4]["request"] == "null"
    assert rows[5]["is_aggregation"] == "true"


def test_export_csv_keeps_a_spreadsheet_from_reading_formulas(cli, tmp_path):
    # What a caller sent, as a spreadsheet would run it: each text cell starting
    # like a formula gets a leading ', which the spreadsheet shows as nothing.
    hostile = (ObjectId(), "+cmd|' /C calc'!A0")
    records = [
        export_record(
            created_at=T0, client=hostile, session_key='=HYPERLINK("http://x","y")', request=-1
        ),
        export_record(created_at=T0 + dt.timedelta(seconds=1), client=BOT, session_key="@SUM(1)"),
        export_record(created_at=T0 + dt.timedelta(seconds=2), client=BOT, session_key="-rf"),
        export_record(created_at=T0 + dt.timedelta(seconds=3), client=BOT, session_key="plain"),
    ]
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", records)))
    target = tmp_path / "out.csv"
    cli("export", "--format", "csv", "-o", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert [r["session_key"] for r in rows] == [
        '\'=HYPERLINK("http://x","y")',
        "'@SUM(1)",
        "'-rf",
        "plain",
    ]
    assert rows[0]["llm_client_name"] == "'+cmd|' /C calc'!A0"
    assert rows[0]["request"] == "'-1" and rows[3]["request"] == "null"
    # Times, ids and flags are never touched; JSON Lines keeps every value exactly.
    assert rows[0]["created_at"].startswith("2026-") and rows[0]["is_aggregation"] == "false"
    exported = tmp_path / "out.jsonl"
    cli("export", "-o", str(exported))
    first = json.loads(exported.read_text(encoding="utf-8").splitlines()[0])
    assert first["session_key"] == '=HYPERLINK("http://x","y")' and first["request"] == -1


def test_import_is_idempotent(cli, tmp_path):
    path = _seed(cli, tmp_path)
    again = cli.json("import", str(path))
    assert again["imported"] == 0 and again["already_present"] == 6
    assert again["clients_created"] == 0
    assert cli.requests.count_documents({}) == 6
    assert cli.db["llm_clients"].count_documents({}) == 2


def test_import_keeps_client_ids_and_reuses_clients_by_name(cli, tmp_path):
    # A client of that name already exists under another id: it is reused.
    existing = ObjectId()
    cli.db["llm_clients"].insert_one(
        {"_id": existing, "name": "coder", "description": "", "metadata": {}}
    )
    _seed(cli, tmp_path)
    clients = {c["name"]: c["_id"] for c in cli.db["llm_clients"].find()}
    assert clients == {"coder": existing, "support-bot": BOT[0]}
    assert cli.requests.count_documents({"llm_client_id": existing}) == 3


def test_a_bad_line_stops_the_import_before_anything_is_written(cli, tmp_path):
    good = export_record(created_at=T0, client=BOT)
    path = tmp_path / "bad.jsonl"
    bad_time = {**export_record(created_at=T0, client=BOT), "created_at": "yesterday"}
    path.write_text(json.dumps(good) + "\n" + '{"id": "not json\n' + json.dumps(bad_time) + "\n")
    result = cli("import", str(path), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: line 2: not JSON")
    assert "nothing was imported" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli.requests.count_documents({}) == 0


def test_on_error_skip_imports_the_good_lines(cli, tmp_path):
    records = [export_record(created_at=T0, client=BOT, request={"n": i}) for i in range(3)]
    lines = [json.dumps(r) for r in records]
    lines.insert(1, json.dumps({**records[0], "session_key": {"$ne": ""}}))
    lines.insert(3, json.dumps({**records[0], "extra": 1}))
    lines.insert(4, json.dumps({**records[0], "request": {"n": 2**70}}))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    result = cli("import", "--on-error", "skip", str(path))
    assert "skipped line 2: session_key must be a string" in result.stderr
    assert "skipped line 4: not an llmreq export line: unknown extra" in result.stderr
    assert "skipped line 5: request['n']: the integer" in result.stderr
    assert "imported 3 requests" in result.stdout
    assert cli.requests.count_documents({}) == 3


def _fixture() -> list[dict[str, Any]]:
    """What Django's dumpdata writes for the reference's two models."""
    return [
        {
            "model": "llm_client.llmclient",
            "pk": 1,
            "fields": {
                "name": "support-bot",
                "created_at": "2024-05-01T08:00:00.120Z",
                "updated_at": "2024-05-01T08:00:00.120Z",
            },
        },
        {
            "model": "llm_client.llmclient",
            "pk": 2,
            "fields": {
                "name": "summarizer",
                "created_at": "2024-05-01T08:00:00Z",
                "updated_at": "2024-05-02T08:00:00Z",
            },
        },
        {
            "model": "llm_client.llmclientrequests",
            "pk": 10,
            "fields": {
                "created_at": "2024-05-03T10:15:30.250Z",
                "updated_at": "2024-05-03T10:15:30.250Z",
                "llm_client": 1,
                "request": {"messages": [{"role": "user", "content": "Hi"}]},
                "session_key": "q3k1z9",
                "is_aggregation": False,
            },
        },
        {
            "model": "llm_client.llmclientrequests",
            "pk": 11,
            "fields": {
                "created_at": "2024-05-03T10:16:00Z",
                "updated_at": "2024-05-03T10:16:00Z",
                "llm_client": 2,
                "request": None,
                "session_key": None,
                "is_aggregation": False,
            },
        },
        {
            "model": "llm_client.llmclientrequests",
            "pk": 12,
            "fields": {
                "created_at": "2024-05-03T12:30:00.999+02:00",
                "updated_at": "2024-05-03T12:30:00.999+02:00",
                "llm_client": 1,
                "request": {"summary": "3 requests"},
                "session_key": "q3k1z9",
                "is_aggregation": True,
            },
        },
        {"model": "sessions.session", "pk": "q3k1z9", "fields": {"expire_date": "2024-06-01"}},
    ]


def test_django_fixture_import(cli, tmp_path):
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(_fixture(), indent=2))
    # One client exists already, under its name: its requests go to it.
    existing = ObjectId()
    cli.db["llm_clients"].insert_one(
        {"_id": existing, "name": "summarizer", "description": "", "metadata": {}}
    )
    summary = cli.json("import", str(path))
    assert summary == {
        "imported": 3,
        "already_present": 0,
        "clients_created": 1,
        "ignored_entries": 1,
        "skipped": [],
    }
    docs = {d["request"] and next(iter(d["request"])): d for d in cli.requests.find()}
    chat_doc = docs["messages"]
    assert chat_doc["created_at"] == dt.datetime(2024, 5, 3, 10, 15, 30, 250000, tzinfo=UTC)
    assert chat_doc["session_key"] == "q3k1z9"
    assert chat_doc["_id"].generation_time == dt.datetime(2024, 5, 3, 10, 15, 30, tzinfo=UTC)
    bot = cli.db["llm_clients"].find_one({"name": "support-bot"})
    assert chat_doc["llm_client"] == DBRef("llm_clients", bot["_id"])
    assert chat_doc["llm_client_id"] == bot["_id"]
    null_doc = docs[None]
    assert null_doc["session_key"] is None and null_doc["llm_client_id"] == existing
    rollup = docs["summary"]
    assert rollup["is_aggregation"] is True
    assert rollup["created_at"] == dt.datetime(2024, 5, 3, 10, 30, 0, 999000, tzinfo=UTC)

    # Importing the fixture again stores nothing twice.
    again = cli.json("import", str(path))
    assert again["imported"] == 0 and again["already_present"] == 3
    assert again["clients_created"] == 0
    assert cli.requests.count_documents({}) == 3
    # And the session reads back through the other commands.
    shown = cli.json("show", "q3k1z9")
    assert [r["request"] for r in shown] == [
        {"messages": [{"role": "user", "content": "Hi"}]},
        {"summary": "3 requests"},
    ]


def test_django_fixture_with_a_bad_entry(cli, tmp_path):
    entries = _fixture()
    entries[3]["fields"]["llm_client"] = 7
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(entries, indent=2))
    result = cli("import", str(path), ok=False)
    assert result.exit_code == 1
    starts = [n for n, text in enumerate(path.read_text().splitlines(), 1) if text == "  {"]
    line = starts[3]  # where the 4th entry begins
    pk = entries[3]["pk"]
    message = f"line {line}: entry 4 (pk {pk}): llm_client 7 is not an llm_client.llmclient"
    assert f"error: {message}" in result.stderr
    assert cli.requests.count_documents({}) == 0
    summary = cli.json("import", "--on-error", "skip", str(path))
    assert summary["imported"] == 2
    assert summary["skipped"][0]["line"] == line


def test_a_one_line_fixture_names_the_entry_of_each_error(cli, tmp_path):
    """``dumpdata`` without ``--indent`` writes one line: the entry says which is bad."""
    entries = _fixture()
    entries[3]["fields"]["llm_client"] = 7
    entries[4]["fields"]["created_at"] = "not a time"
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(entries))
    assert len(path.read_text().splitlines()) == 1
    result = cli("import", "--on-error", "skip", str(path), ok=False)
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2, result.stderr
    assert f"line 1: entry 4 (pk {entries[3]['pk']}): llm_client 7" in skipped[0]
    assert f"line 1: entry 5 (pk {entries[4]['pk']}): created_at" in skipped[1]


def test_import_refuses_other_files(cli, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    result = cli("import", str(path), ok=False)
    assert result.exit_code == 1
    assert "is neither JSON Lines nor a Django fixture" in result.stderr
    missing = cli("import", str(tmp_path / "nope.jsonl"), ok=False)
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    directory = cli("import", str(tmp_path), ok=False)
    assert directory.exit_code == 1 and "is not a file" in directory.stderr


def test_export_refuses_a_bad_target_and_leaves_no_partial_file(cli, tmp_path):
    result = cli("export", "-o", str(tmp_path / "no" / "such" / "dir.jsonl"), ok=False)
    assert result.exit_code == 1 and "does not exist" in result.stderr
    result = cli("export", "-o", str(tmp_path), ok=False)
    assert result.exit_code == 1 and "is a directory" in result.stderr
    # A failing export (an unknown client) leaves nothing behind.
    target = tmp_path / "out.jsonl"
    assert cli("export", "-o", str(target), "--client", "ghost", ok=False).exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_export_writes_non_json_values_from_other_writers_as_strings(cli, tmp_path):
    """A payload written straight into MongoDB may hold BSON types JSON lacks."""
    _seed(cli, tmp_path)
    client_id = cli.db["llm_clients"].find_one({"name": "coder"})["_id"]
    when = dt.datetime(2026, 3, 2, 12, 0, 0, 5000, tzinfo=UTC)
    cli.requests.insert_one(
        {
            "created_at": when,
            "updated_at": when,
            "llm_client": DBRef("llm_clients", client_id),
            "llm_client_id": client_id,
            "request": {"at": when, "ref": client_id},
            "session_key": "raw",
            "is_aggregation": False,
        }
    )
    line = json.loads(cli("export", "-o", "-", "--session", "raw").stdout)
    assert line["request"] == {"at": "2026-03-02T12:00:00.005Z", "ref": str(client_id)}


def test_a_line_nested_50000_deep_is_one_bad_line(cli, tmp_path):
    good = [export_record(created_at=T0, client=BOT, request={"n": i}) for i in range(2)]
    deep = json.dumps({**good[0], "request": None}, separators=(",", ":")).replace(
        '"request":null', '"request":' + "[" * 50_000 + "]" * 50_000
    )
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(good[0]) + "\n" + deep + "\n" + json.dumps(good[1]) + "\n")
    result = cli("import", str(path), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: line 2: nested too deeply")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert cli.requests.count_documents({}) == 0

    summary = cli.json("import", "--on-error", "skip", str(path))
    assert summary["imported"] == 2
    assert [s["line"] for s in summary["skipped"]] == [2]
    assert {d["request"]["n"] for d in cli.requests.find()} == {0, 1}


def test_a_fixture_that_is_not_json_says_where(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_text('[\n{"model": "llm_client.llmclient", "pk": 1, "fields": {"name": "bot')
    result = cli("import", str(path), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: line 2: not JSON (Unterminated string starting at column 63)"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    lines = tmp_path / "cut.jsonl"
    lines.write_text(json.dumps(export_record(created_at=T0, client=BOT)) + '\n{"id": "cut short')
    result = cli("import", str(lines), ok=False)
    assert result.stderr.startswith(
        "error: line 2: not JSON (Unterminated string starting at column 8); nothing was imported"
    )


def test_a_fixture_entry_nested_too_deep_stops_cleanly(cli, tmp_path):
    entries = _fixture()
    text = json.dumps(entries[:3])[:-1] + ', {"model": "x", "fields": ' + "[" * 50_000
    path = tmp_path / "deep.json"
    path.write_text(text + "]" * 50_000 + "}]")
    result = cli("import", "--on-error", "skip", str(path), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: line 1: nested too deeply")
    assert len(result.stderr.splitlines()) == 1
    assert cli.requests.count_documents({}) == 0


def test_out_of_range_times_in_an_import_are_bad_lines(cli, tmp_path):
    good = export_record(created_at=T0, client=BOT)
    early = {**export_record(created_at=T0, client=BOT), "created_at": "0001-01-01T00:00:00+14:00"}
    late = {**export_record(created_at=T0, client=BOT), "updated_at": "9999-12-31T23:59:59-01:00"}
    path = write_jsonl(tmp_path / "range.jsonl", [early, good, late])
    result = cli("import", str(path), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: line 1: created_at '0001-01-01T00:00:00+14:00' is out of range"
    )
    assert len(result.stderr.splitlines()) == 1
    summary = cli.json("import", "--on-error", "skip", str(path))
    assert summary["imported"] == 1 and [s["line"] for s in summary["skipped"]] == [1, 3]


def test_django_fixture_with_null_is_aggregation_imports_false(cli, tmp_path):
    # The reference declares is_aggregation = BooleanField(default=False,
    # blank=True, null=True), and its dumpdata writes null for unset rows.
    entries = _fixture()
    for entry in entries[2:5]:
        entry["fields"]["is_aggregation"] = None
    del entries[3]["fields"]["is_aggregation"]
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(entries, indent=2))
    summary = cli.json("import", str(path))
    assert summary["imported"] == 3 and summary["skipped"] == []
    assert [d["is_aggregation"] for d in cli.requests.find()] == [False, False, False]
    bad = _fixture()
    bad[2]["fields"]["is_aggregation"] = "yes"
    path.write_text(json.dumps(bad, indent=2))
    result = cli("import", str(path), ok=False)
    assert "is_aggregation must be true or false, got str" in result.stderr


def _exported(cli, tmp_path: Path) -> bytes:
    """Seed two records and return what ``export -o -`` writes for them."""
    _seed(cli, tmp_path)
    return cli("export", "-o", "-").stdout.encode()


def _llmreq(cli, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """The real command in its own process, against the test's database."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "llmreq_mongo",
            "--uri",
            cli.uri,
            "--database",
            cli.database,
            *list(args),
        ],
        capture_output=True,
        timeout=120,
        check=False,
        **kwargs,
    )


def test_export_writes_through_a_fifo_to_its_reader(cli, tmp_path):
    expected = _exported(cli, tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    try:
        cli("export", "-o", str(fifo))
        received, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    assert received == expected
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "seed.jsonl"]


def test_export_follows_a_symlink_and_keeps_it(cli, tmp_path):
    expected = _exported(cli, tmp_path)
    real = tmp_path / "data" / "export.jsonl"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    cli("export", "-o", str(link))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == expected
    dangling = tmp_path / "new.jsonl"
    dangling.symlink_to(tmp_path / "data" / "fresh.jsonl")
    cli("export", "-o", str(dangling))
    assert dangling.is_symlink() and (tmp_path / "data" / "fresh.jsonl").read_bytes() == expected
    assert sorted(p.name for p in real.parent.iterdir()) == ["export.jsonl", "fresh.jsonl"]


def test_export_keeps_an_existing_files_mode_and_gives_new_ones_the_umask(cli, tmp_path):
    expected = _exported(cli, tmp_path)
    existing = tmp_path / "shared.jsonl"
    existing.write_text("old\n")
    os.chmod(existing, 0o664)
    cli("export", "-o", str(existing))
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o664
    assert existing.read_bytes() == expected
    mask = os.umask(0o022)
    try:
        cli("export", "-o", str(tmp_path / "new.jsonl"))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "new.jsonl").st_mode) == 0o644


def _device(tmp_path: Path, name: str) -> Path:
    """``/dev/<name>``, or as root a twin of it in ``tmp_path``.

    As root, an export that wrongly replaced its target would replace the
    machine's own device node; the twin (the same device, or the same
    symlink) takes that risk instead.
    """
    system = Path("/dev") / name
    if os.geteuid() != 0:
        return system
    twin = tmp_path / name
    if system.is_symlink():
        twin.symlink_to(os.readlink(system))
    else:
        info = os.stat(system)
        os.mknod(twin, stat.S_IFCHR | 0o666, info.st_rdev)
    return twin


def test_export_to_dev_stdout_writes_through(cli, tmp_path):
    expected = _exported(cli, tmp_path)
    stdout = _device(tmp_path, "stdout")
    proc = _llmreq(cli, "export", "-o", str(stdout))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected
    assert stdout.is_symlink()
    null = _device(tmp_path, "null")
    assert _llmreq(cli, "export", "-o", str(null)).returncode == 0
    assert stat.S_ISCHR(os.stat(null).st_mode)


def test_export_to_dev_full_is_one_clean_error_and_leaves_the_device(cli, tmp_path):
    _seed(cli, tmp_path)
    full = _device(tmp_path, "full")
    before = os.stat(full)
    proc = _llmreq(cli, "export", "-o", str(full))
    assert proc.returncode == 1
    assert proc.stderr.decode() == f"error: No space left on device: {full}\n"
    after = os.stat(full)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino
