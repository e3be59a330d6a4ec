"""Ctrl-C (a real SIGINT) stops a command promptly: one line, status 130."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from bson import ObjectId
from clitools import UTC, export_record, write_jsonl
from procs import llmreq, start

from llmreq_mongo._cli import _import

if TYPE_CHECKING:
    from conftest import Cli

BOT = (ObjectId(), "support-bot")
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_ctrl_c_stops_tail_with_one_line(tmp_path: Path) -> None:
    made = llmreq("demo", "--requests", "3", "--sessions", "1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    tail = start("tail", cwd=tmp_path)
    ready = tail.err_line()
    assert ready.startswith("following new requests"), (ready, tail.rest_of_err())
    status, err = tail.stop(signal.SIGINT)
    assert status == 130, err
    assert len(err) == 1 and err[0].startswith("interrupted after "), err
    # The embedded store was closed cleanly: the next command opens it.
    again = llmreq("clients", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_ctrl_c_stops_a_long_demo_with_one_line(tmp_path: Path) -> None:
    demo = start("demo", "--requests", "1000000", "--sessions", "100", cwd=tmp_path)
    # Wait until it is recording: the store exists once the engine has started.
    store = tmp_path / ".llmreq-data" / "WiredTiger"
    deadline = time.monotonic() + 60
    while not store.exists() and demo.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the recording loop
    assert demo.proc.poll() is None, demo.rest_of_err()
    status, err = demo.stop(signal.SIGINT)
    assert status == 130, err
    assert err and err[-1].startswith("interrupted after "), err
    # ... saying how much was done: "...: 1500 of 1000000 requests recorded and stored"
    assert err[-1].rstrip().endswith("of 1000000 requests recorded and stored"), err
    assert not any("Traceback" in line or "MongoDB" in line for line in err), err


def test_sigterm_also_stops_a_command_cleanly(tmp_path: Path) -> None:
    made = llmreq("demo", "--requests", "3", "--sessions", "1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    tail = start("tail", cwd=tmp_path)
    assert tail.err_line().startswith("following new requests")
    status, err = tail.stop(signal.SIGTERM)
    assert status == 143, err
    assert len(err) == 1 and err[0].startswith("terminated after "), err
    again = llmreq("clients", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_ctrl_c_while_llmreq_starts_is_one_line_too(tmp_path: Path) -> None:
    made = llmreq("demo", "--requests", "3", "--sessions", "1", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    log = tmp_path / ".llmreq-data" / "engine.log"
    log.unlink(missing_ok=True)
    clients = start("clients", cwd=tmp_path)
    # The engine's head start writes its log: llmreq is past its first lines
    # and is importing the command line.
    deadline = time.monotonic() + 60
    while not log.exists() and clients.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    status, err = clients.stop(signal.SIGINT)
    assert status == 130, err
    assert len(err) == 1 and err[0].startswith("interrupted after "), err
    again = llmreq("clients", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


#: ``llmreq ARGS`` in a child where ``MODULE.NAME`` (a coroutine function of
#: a command) is followed by a Ctrl-C while the command is still busy (a
#: child: the signal must not reach pytest's own process).
_CTRL_C_AFTER = """
import asyncio, importlib, os, signal, sys
from llmreq_mongo._cli import main

module = importlib.import_module(sys.argv.pop(1))
name = sys.argv.pop(1)
work = getattr(module, name)

async def interrupted(*args):
    await work(*args)
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(60)  # cancelled by the signal

setattr(module, name, interrupted)
sys.argv[0] = "llmreq"
main()
"""


def _interrupted_after(cli: Cli, module: str, name: str, *args: str) -> tuple[int, str]:
    """Run ``llmreq ARGS`` on ``cli``'s database, Ctrl-C after ``module.name``; status, stderr."""
    target = ["--uri", cli.uri, "--database", cli.database, *args]
    child = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AFTER, module, name, *target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return child.returncode, child.stderr


def test_an_interrupted_import_says_how_far_it_got(cli: Cli, tmp_path: Path) -> None:
    records = [export_record(created_at=T0, client=BOT, request={"n": i}) for i in range(7)]
    path = write_jsonl(tmp_path / "seed.jsonl", records)
    cli("import", str(write_jsonl(tmp_path / "first.jsonl", records[:2])))
    status, err = _interrupted_after(
        cli, "llmreq_mongo._cli._import", "write_records", "import", str(path)
    )
    assert status == 130, err
    line = err.strip()
    assert line.startswith("interrupted after "), line
    assert line.endswith(
        ": 5 requests imported, 2 already present; import the file again to add the rest"
    ), line


def test_an_interrupted_prune_says_how_far_it_got(cli: Cli, tmp_path: Path) -> None:
    old = [export_record(created_at=T0, client=BOT, request={"n": i}) for i in range(4)]
    cli("import", str(write_jsonl(tmp_path / "old.jsonl", old)))
    args = ["prune", "--older-than", "1d", "--batch-size", "3", "--yes"]
    status, err = _interrupted_after(cli, "llmreq_mongo._cli._retention", "_delete_older", *args)
    assert status == 130, err
    line = err.strip()
    assert line.startswith("interrupted after ") and line.endswith(": 4 of 4 requests deleted")


def test_an_import_counts_its_time_from_before_it_reads_the_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "one.jsonl", [export_record(created_at=T0, client=BOT)])
    seen: dict[str, float] = {}
    check_file = getattr(_import, "check_file")  # noqa: B009 (not in its __all__)
    run = getattr(_import, "run")  # noqa: B009

    def checking(*args: Any, **kwargs: Any) -> Any:
        seen["read"] = time.monotonic()
        return check_file(*args, **kwargs)

    def running(*args: Any, **kwargs: Any) -> Any:
        seen["started"] = kwargs["started"]
        return run(*args, **kwargs)

    monkeypatch.setattr(_import, "check_file", checking)
    monkeypatch.setattr(_import, "run", running)
    cli("import", str(path))
    assert seen["started"] <= seen["read"]


#: A child that sends itself SIGINT while the launcher imports the head start
#: (the first ~20 ms of ``llmreq``, before ``main()`` runs), then runs it.
_CTRL_C_WHILE_THE_LAUNCHER_IMPORTS = """
import os, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "llmreq_mongo._head_start":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
from llmreq_mongo._launch import main
main()
"""


def test_ctrl_c_while_the_launcher_imports_is_one_line(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CTRL_C_WHILE_THE_LAUNCHER_IMPORTS, "clients"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 130, child.stderr
    lines = child.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted after "), lines


#: ``llmreq demo`` in a child whose recorder gets a Ctrl-C once it accepted
#: ``AFTER`` records (a child: the signal must not reach pytest's own process).
_DEMO_CTRL_C_AFTER = """
import os, signal, sys
from llmreq_mongo._cli import _demo, main

AFTER = int(sys.argv.pop(1))

class CtrlCAfter(_demo.Recorder):
    async def arecord(self, *args, **kwargs):
        if self.stats.accepted == AFTER:
            os.kill(os.getpid(), signal.SIGINT)
        return await super().arecord(*args, **kwargs)

_demo.Recorder = CtrlCAfter
sys.argv[0] = "llmreq"
main()
"""


def test_an_interrupted_demo_stops_soon_and_counts_what_is_stored(cli: Cli) -> None:
    after = 1_200
    args = ["--uri", cli.uri, "--database", cli.database, "demo", "--requests", "20000"]
    child = subprocess.run(
        [sys.executable, "-c", _DEMO_CTRL_C_AFTER, str(after), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 130, child.stderr
    line = child.stderr.strip().splitlines()[-1]
    stored = cli.requests.count_documents({})
    assert line.endswith(f": {stored} of 20000 requests recorded and stored"), (line, stored)
    # The signal is acted on at the next call, not after all 20,000 were built:
    # what was queued then (a few batches at most) is written, nothing more.
    assert after <= stored <= after + 2_000, stored
