"""Which store a command opens: a missing one is never created by a read command,
and a store ``llmreq serve`` is serving is used through its server."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from procs import llmreq, serving

from llmreq_mongo._cli._app import Settings, _engine_output, _start_failed

NO_STORE = "no store here: run `llmreq demo`, or pass `--uri`"

READ_COMMANDS = [
    ["clients"],
    ["sessions"],
    ["show", "s1"],
    ["stats"],
    ["export", "-o", "-"],
    ["retention", "show"],
    ["retention", "set", "30d"],
    ["prune", "--older-than", "30d", "--dry-run"],
    ["aggregate", "--since", "2026-01-01", "--until", "2026-01-02"],
    ["tail"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a))
def test_a_command_that_does_not_write_refuses_a_missing_store(
    tmp_path: Path, args: list[str]
) -> None:
    proc = llmreq(*args, cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.splitlines() == [f"error: {NO_STORE}"]
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # not even an empty .llmreq-data


def test_a_missing_store_named_by_data_dir_is_refused_too(tmp_path: Path) -> None:
    proc = llmreq("--data-dir", "elsewhere", "clients", cwd=tmp_path)
    assert proc.returncode == 1
    assert NO_STORE in proc.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_demo_and_import_create_the_store(tmp_path: Path) -> None:
    proc = llmreq("demo", "--requests", "6", "--sessions", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / ".llmreq-data").is_dir()
    listed = llmreq("clients", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert sum(row["requests"] for row in json.loads(listed.stdout)) == 6

    line = {
        "id": "65f000000000000000000001",
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
        "llm_client": {"id": "65f000000000000000000002", "name": "imported"},
        "session_key": "s1",
        "is_aggregation": False,
        "request": {"model": "m"},
    }
    (tmp_path / "in.jsonl").write_text(json.dumps(line) + "\n")
    imported = llmreq("--data-dir", "other", "import", "in.jsonl", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert (tmp_path / "other").is_dir()


def test_commands_use_the_server_running_on_their_store(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        state = json.loads((tmp_path / ".llmreq-data" / "llmreq-serve.json").read_text())
        assert state == {"uri": served.uri, "port": state["port"], "pid": served.proc.pid}
        # Without the server's state file these would refuse: the store is locked.
        wrote = llmreq("demo", "--requests", "5", "--sessions", "1", cwd=tmp_path)
        assert wrote.returncode == 0, wrote.stderr
        read = llmreq("clients", "--json", cwd=tmp_path)
        assert read.returncode == 0, read.stderr
        assert sum(row["requests"] for row in json.loads(read.stdout)) == 5
        through_uri = llmreq("--uri", served.uri, "clients", "--json", cwd=tmp_path)
        assert json.loads(through_uri.stdout) == json.loads(read.stdout)
        again = llmreq("serve", cwd=tmp_path)
        assert again.returncode == 1
        assert f"already served at {served.uri}" in again.stderr
    # Stopped: the state file is gone and the store opens directly again.
    assert not (tmp_path / ".llmreq-data" / "llmreq-serve.json").exists()
    after = llmreq("clients", "--json", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert sum(row["requests"] for row in json.loads(after.stdout)) == 5


@pytest.mark.parametrize(
    "state",
    [
        "not json",
        json.dumps({"uri": "mongodb://127.0.0.1:9/", "port": 9, "pid": 2**22 + 12345}),
        json.dumps({"uri": "mongodb://127.0.0.1:9/", "port": 9, "pid": os.getpid()}),
        json.dumps({"uri": "mongodb://evil.example:1/", "port": 1, "pid": os.getpid()}),
    ],
    ids=["garbage", "dead-process", "closed-port", "remote-uri"],
)
def test_a_stale_state_file_is_ignored(tmp_path: Path, state: str) -> None:
    made = llmreq("demo", "--requests", "3", "--sessions", "1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (tmp_path / ".llmreq-data" / "llmreq-serve.json").write_text(state)
    read = llmreq("clients", "--json", cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    assert sum(row["requests"] for row in json.loads(read.stdout)) == 3


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store the demo made, copied by each test that damages it."""
    where = tmp_path_factory.mktemp("demo-store")
    made = llmreq("demo", "--requests", "20", "--sessions", "4", cwd=where)
    assert made.returncode == 0, made.stderr
    return where / ".llmreq-data"


def _damaged_copy(demo_store: Path, tmp_path: Path, name: str) -> Path:
    """``tmp_path`` holding a copy of the demo's store with file ``name`` damaged.

    The storage library's own files are cut in half; the engine's tables
    (``secantus_*``) are garbled after their first block.
    """
    shutil.copytree(demo_store, tmp_path / ".llmreq-data")
    (tmp_path / ".llmreq-data" / "engine.log").unlink(missing_ok=True)
    damaged = tmp_path / ".llmreq-data" / name
    if name.startswith("secantus_"):
        data = bytearray(damaged.read_bytes())
        for i in range(4096, len(data), 7):
            data[i] = (data[i] * 31 + 7) % 256
        damaged.write_bytes(bytes(data))
    else:
        os.truncate(damaged, damaged.stat().st_size // 2)
    return tmp_path


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("WiredTiger.wt", "WT_TRY_SALVAGE"),  # the metadata
        ("WiredTiger.turtle", "WT_NOTFOUND"),  # the pointer to it
        ("secantus_collections.wt", "its catalogue"),  # opens; the first query fails
    ],
)
def test_a_damaged_store_is_one_line_saying_so(
    demo_store: Path, tmp_path: Path, name: str, why: str
) -> None:
    where = _damaged_copy(demo_store, tmp_path, name)
    result = llmreq("clients", cwd=where)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines  # the engine's own lines are in its log
    assert lines[0].startswith(
        f"error: the embedded store in .llmreq-data/ looks damaged ({why}"
    ), lines
    assert "move it aside (mv .llmreq-data .llmreq-data.damaged)" in lines[0]
    assert lines[0].endswith("the engine's messages are in .llmreq-data/engine.log")
    assert "another llmreq" not in lines[0]
    assert (where / ".llmreq-data" / "engine.log").stat().st_size > 0
    # --debug shows the engine's own lines on the terminal too.
    debug = llmreq("--debug", "clients", cwd=where)
    assert debug.returncode == 1 and len(debug.stderr.splitlines()) > 1


def test_a_store_locked_as_it_opens_is_the_in_use_line(tmp_path: Path) -> None:
    # The race: no one held the lock when llmreq looked, someone did when the
    # engine opened (three `llmreq demo` at once on a fresh directory).
    failed = _start_failed(Path(".llmreq-data"), OSError("Device or resource busy"))
    assert str(failed).startswith(
        "the embedded store in .llmreq-data/ is in use by another process"
    )
    other = _start_failed(Path("d"), RuntimeError("WT_PANIC: WiredTiger library panic"))
    assert "looks damaged" in str(other) and "another" not in str(other)


def test_what_the_engine_writes_on_stderr_while_it_opens_goes_to_its_log(tmp_path: Path) -> None:
    settings = Settings(uri=None, database="x", json=False, debug=False, data_dir=tmp_path / "d")
    with _engine_output(settings):
        os.write(2, b"[WT_VERB_DEFAULT][ERROR]: __posix_file_lock\n")
    assert (tmp_path / "d" / "engine.log").read_bytes().endswith(b"__posix_file_lock\n")
