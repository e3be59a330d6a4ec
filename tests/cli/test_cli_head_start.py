"""The engine's head start: ``llmreq`` spawns the engine before it imports the command line.

The guess is read from the arguments alone, and a wrong one costs time, never
correctness: no process and no lock are left behind, and a killed ``llmreq``
takes its engine with it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from procs import llmreq, start

from llmreq_mongo import _head_start
from llmreq_mongo._cli._app import Settings, store
from llmreq_mongo._local_store import ENV_URI, STATE_FILE, in_use

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/cmdline").exists(), reason="finds the engine's child through /proc"
)


def engine_children(data_dir: Path) -> list[int]:
    """The engine child processes serving ``data_dir`` (found by their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":  # exited, not yet reaped by its parent
            continue
        if any(a.endswith(b"_engine_process.py") for a in argv) and any(
            str(data_dir).encode() in a for a in argv
        ):
            found.append(int(entry.name))
    return found


def engine_children_within(data_dir: Path, seconds: float) -> list[int]:
    """:func:`engine_children`, once there is one (a child just spawned is not
    always listed under its own command line yet), or none after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (found := engine_children(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding a small demo store."""
    where = tmp_path_factory.mktemp("head-start")
    done = llmreq("demo", "--requests", "3", "--sessions", "1", cwd=where)
    assert done.returncode == 0, done.stderr
    return where


# -- the guess ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["clients"],
        ["--json", "clients", "--since", "7d"],
        ["--database", "other", "--timeout=9", "sessions"],
        ["--data-dir", ".llmreq-data", "show", "abc"],
        ["--data-dir=.llmreq-data", "--debug", "stats"],
        ["tail"],
        ["retention", "show"],
    ],
)
def test_a_read_command_on_the_store_is_guessed(
    made: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(made)
    assert _head_start.guess(argv, {}) == str(made / ".llmreq-data")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["clients", "--help"],
        ["--version"],
        ["--uri", "mongodb://127.0.0.1:1/", "clients"],
        ["--uri=mongodb://127.0.0.1:1/", "clients"],
        ["clients", "--uri", "mongodb://127.0.0.1:1/"],
        ["demo"],
        ["import", "x.jsonl"],
        ["serve"],
        ["ui"],
        ["clinets"],
        ["--jsn", "clients"],
        ["--json=1", "clients"],
        ["--data-dir", "elsewhere", "clients"],
        ["-h"],
    ],
)
def test_anything_else_is_not(made: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.chdir(made)
    assert _head_start.guess(argv, {}) is None


def test_a_uri_in_the_environment_means_no_head_start(
    made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(made)
    assert _head_start.guess(["clients"], {ENV_URI: "mongodb://127.0.0.1:1/"}) is None
    assert _head_start.guess(["clients"], {ENV_URI: ""}) is None
    assert _head_start.begin(["--uri", "mongodb://127.0.0.1:1/", "clients"], {}) is None


def test_a_served_or_open_store_gets_no_head_start(made: Path, tmp_path: Path) -> None:
    data_dir = made / ".llmreq-data"
    state = data_dir / STATE_FILE
    state.write_text("{}\n")
    try:
        assert _head_start.guess(["--data-dir", str(data_dir), "clients"], {}) is None
    finally:
        state.unlink()
    tail = start("tail", cwd=made)
    try:
        assert tail.err_line().startswith("following new requests")
        assert in_use(data_dir)
        assert _head_start.guess(["--data-dir", str(data_dir), "clients"], {}) is None
    finally:
        tail.stop(signal.SIGINT)
        # Its engine lets the store go a moment after `tail` exits, and the next
        # test starts an engine on the same store: under load it found it still held.
        assert all(gone_within(pid, 30) for pid in engine_children(data_dir))


# -- the head start -------------------------------------------------------------


def test_store_uses_the_head_started_engine(made: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(made)
    started = _head_start.begin(["clients"], {})
    assert started is not None
    try:
        assert engine_children_within(made / ".llmreq-data", 10) == [started.child.pid]
        settings = Settings(uri=None, database="llmreq", json=False, debug=False, command="clients")

        async def served_at() -> set[int | None]:
            async with store(settings) as handle:
                await handle.database.command("ping")
                assert started.child.poll() is None
                servers = handle.client.topology_description.server_descriptions()
                return {port for _host, port in servers}

        assert asyncio.run(served_at()) == {started.port}
        # store() stopped it on the way out, and the store is free again.
        assert started.child.poll() == 0
        assert not in_use(made / ".llmreq-data")
    finally:
        _head_start._finish()
        if started.child.poll() is None:
            started.child.kill()


def test_the_real_entry_starts_the_engine_as_a_child_and_stops_it(made: Path) -> None:
    log = made / ".llmreq-data" / "engine.log"
    log.unlink(missing_ok=True)  # only a child engine writes it
    done = llmreq("--json", "clients", cwd=made)
    assert done.returncode == 0, done.stderr
    assert '"name"' in done.stdout
    assert log.exists()
    assert engine_children(made / ".llmreq-data") == []
    assert not in_use(made / ".llmreq-data")


def test_with_a_uri_no_engine_is_spawned(made: Path) -> None:
    log = made / ".llmreq-data" / "engine.log"
    log.unlink(missing_ok=True)
    done = llmreq(
        "--uri",
        "mongodb://127.0.0.1:9/?connectTimeoutMS=200",
        "--timeout",
        "0.3",
        "clients",
        cwd=made,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: cannot reach MongoDB"), done.stderr
    assert not log.exists()


def test_a_wrong_guess_leaves_no_process_and_no_lock(made: Path) -> None:
    log = made / ".llmreq-data" / "engine.log"
    log.unlink(missing_ok=True)
    wrong = llmreq("clients", "--bogus-option", cwd=made)
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.splitlines() == [
        "error: No such option: --bogus-option",
        "Try 'llmreq clients --help' for help.",
    ]
    assert log.exists()  # the guess was made: the engine was spawned
    assert engine_children(made / ".llmreq-data") == []
    assert not in_use(made / ".llmreq-data")
    again = llmreq("clients", cwd=made)
    assert again.returncode == 0, again.stderr


def test_a_killed_llmreq_takes_its_engine_with_it(made: Path) -> None:
    data_dir = made / ".llmreq-data"
    tail = start("tail", cwd=made)
    assert tail.err_line().startswith("following new requests")
    children = engine_children(data_dir)
    assert len(children) == 1
    os.kill(tail.proc.pid, signal.SIGKILL)
    tail.proc.wait()
    assert gone_within(children[0], 15), "the engine outlived its llmreq"
    assert not in_use(data_dir)
    again = llmreq("clients", cwd=made)
    assert again.returncode == 0, again.stderr
