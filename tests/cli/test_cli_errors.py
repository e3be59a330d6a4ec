"""Errors: one clear line on stderr, exit status 1, no traceback, no password."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llmreq_mongo._cli import app
from llmreq_mongo._cli._app import redact


def _run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line(result, start: str) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


class _Completed:
    """A finished ``llmreq`` process, shaped like Click's ``Result``."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.exit_code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr


def _llmreq(*args: str) -> _Completed:
    """Run the real command in its own process.

    Used where the server cannot be reached: PyMongo can leave a socket of an
    abandoned connection attempt for the garbage collector when the client
    closes, and in-process that would surface as a ResourceWarning in some
    later test.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "llmreq_mongo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return _Completed(proc)


def test_unreachable_server_fails_fast_with_one_line():
    port = _free_port()
    uri = f"mongodb://reader:hunter2@127.0.0.1:{port}/?authSource=admin"
    result = _llmreq("--uri", uri, "--timeout", "0.5", "clients")
    line = _one_line(
        result, f"error: cannot reach MongoDB at 127.0.0.1:{port} (gave up after 0.5 s)"
    )
    assert "hunter2" not in line and "check --uri" in line


def test_debug_shows_the_traceback_without_the_password():
    uri = f"mongodb://reader:hunter2@127.0.0.1:{_free_port()}/"
    result = _llmreq("--uri", uri, "--timeout", "0.3", "--debug", "sessions")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ServerSelectionTimeoutError" in result.stderr
    assert "hunter2" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach MongoDB")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://localhost:27017", "error: the MongoDB URI is not valid: Invalid URI scheme"),
        ("mongodb://bob:s3cret@localhost:99999/", "error: the MongoDB URI is not valid: Port"),
        ("mongodb://bob:pa:ss@@localhost/", "error: the MongoDB URI is not valid"),
        (
            "mongodb://bob:s3cret@localhost/?tls=ture",
            "error: the MongoDB URI has an option PyMongo cannot read (The value of tls",
        ),
    ],
)
def test_bad_uri(uri, message):
    line = _one_line(_run("--uri", uri, "clients"), message)
    assert "s3cret" not in line and "pa:ss" not in line


def test_bad_database_name(cli):
    result = CliRunner().invoke(app, ["--uri", cli.uri, "--database", "a/b", "clients"])
    _one_line(result, "error: --database 'a/b' is not a valid name")


def test_unknown_client(cli):
    for args in (
        ["sessions", "--client", "ghost"],
        ["stats", "--client", "ghost"],
        ["export", "-o", "-", "--client", "ghost"],
        ["tail", "--client", "ghost"],
    ):
        line = _one_line(cli(*args, ok=False), "error: no LLM client is named 'ghost'")
        assert line.endswith("`llmreq clients` lists the clients")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sessions", "--since", "last tuesday"], "error: --since 'last tuesday' is not a time"),
        (
            ["sessions", "--since", "2026-03-02T10:00:00"],
            "error: --since '2026-03-02T10:00:00' has no time zone",
        ),
        (["sessions", "--until", "2026-02-30"], "error: --until '2026-02-30' is not a valid date"),
        (["prune", "--older-than", "1y"], "error: --older-than '1y' is not a duration"),
        (["sessions", "--since", ""], "error: --since is empty"),
        (["clients", "--since", " "], "error: --since is empty"),
        (["stats", "--until", ""], "error: --until is empty"),
        (["latency", "--since", ""], "error: --since is empty"),
        (["export", "-o", "-", "--until", ""], "error: --until is empty"),
        (["prune", "--older-than", ""], "error: --older-than '' is not a duration"),
        (
            ["export", "-o", "-", "--since", "1d", "--until", "2d"],
            "error: --since must be before --until",
        ),
    ],
)
def test_bad_times_and_durations(cli, args, message):
    _one_line(cli(*args, ok=False), message)


def test_redact():
    uri = "mongodb://app:p%40ss@db1:27017,db2:27017/?replicaSet=rs0"
    text = f"cannot connect to {uri}: bad auth for p@ss"
    assert redact(text, uri) == (
        "cannot connect to mongodb://app:***@db1:27017,db2:27017/?replicaSet=rs0: bad auth for ***"
    )
    assert (
        redact("mongodb+srv://u:x@cluster.example.net") == "mongodb+srv://u:***@cluster.example.net"
    )
    assert redact("mongodb://only-user@host/") == "mongodb://only-user@host/"
