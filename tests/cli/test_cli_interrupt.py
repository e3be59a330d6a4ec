"""Ctrl-C (a real SIGINT) stops a command promptly: one line, status 130."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from procs import llmreq, start


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
