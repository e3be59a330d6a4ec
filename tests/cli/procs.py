"""Running the real ``llmreq`` command in child processes, for the tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["Served", "Streamed", "env", "llmreq", "serving", "start"]


def env() -> dict[str, str]:
    """The environment without a configured URI, so the embedded store is used."""
    return {k: v for k, v in os.environ.items() if k != "LLMREQ_MONGODB_URI"}


def llmreq(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``llmreq ARGS`` in ``cwd`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "llmreq_mongo", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class Streamed:
    """A running ``llmreq`` whose stdout and stderr lines are read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_lines: list[str] = []
        for stream, lines in ((proc.stdout, self.out), (proc.stderr, self.err)):
            threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()

    def err_line(self, timeout: float = 60) -> str:
        line = self.err.get(timeout=timeout)
        self.err_lines.append(line)
        return line

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30) -> tuple[int, list[str]]:
        """Send ``signum``; the exit status and every stderr line not read yet."""
        self.proc.send_signal(signum)
        status = self.proc.wait(timeout=timeout)
        return status, self.rest_of_err()

    def rest_of_err(self) -> list[str]:
        lines: list[str] = []
        while True:
            try:
                line = self.err.get(timeout=5)
            except queue.Empty:
                return lines
            if line == "":  # end of the stream
                return lines
            lines.append(line)


def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    assert stream is not None
    with stream:
        for line in stream:
            lines.put(line.rstrip("\n"))
    lines.put("")


def start(*args: str, cwd: Path) -> Streamed:
    """Start ``llmreq ARGS`` in ``cwd`` without waiting for it."""
    return Streamed(_popen(args, cwd))


def _popen(args: tuple[str, ...], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmreq_mongo", *args],
        cwd=cwd,
        env=env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Served(Streamed):
    """A running ``llmreq serve``, with the URI it printed."""

    uri: str


@contextmanager
def serving(cwd: Path, *args: str) -> Iterator[Served]:
    """Run ``llmreq serve ARGS`` in ``cwd`` until the block ends (then SIGINT)."""
    served = Served(_popen(("serve", *args), cwd))
    try:
        uri = served.out.get(timeout=60)
        assert uri.startswith("mongodb://127.0.0.1:"), (uri, served.rest_of_err())
        served.uri = uri
        yield served
    finally:
        if served.proc.poll() is None:
            served.proc.send_signal(signal.SIGINT)
            try:
                served.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                served.proc.kill()
                served.proc.wait()
