"""Helpers of the reliability suite: fail points, a server in a subprocess, the figures.

Each scenario counts what happened to the writes it attempted and files a
:class:`Tally`; the suite prints every tally in a table at the end of the run
(and writes them as JSON to ``$LLMREQ_RELIABILITY_FIGURES`` when that is set),
which is where the figures in ``docs/reliability.md`` come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

__all__ = [
    "FIGURES",
    "EngineProcess",
    "Tally",
    "fail_point",
    "free_port",
    "tally_writes",
    "write_figures",
]

#: Every tally filed during this run, in order.
FIGURES: list[Tally] = []


@dataclass
class Tally:
    """What happened to the writes (or reads) of one scenario.

    ``acknowledged`` writes are the ones the library returned from; the
    others raised. ``stored`` counts distinct records found afterwards,
    ``duplicated`` the records stored more than once, ``lost`` the acknowledged
    writes not found. ``unacknowledged_stored`` are writes that raised but
    whose record is there all the same (the server applied them and the reply
    was lost or carried a write-concern error): allowed, as on MongoDB.
    """

    suite: str
    scenario: str
    injected: str
    attempted: int = 0
    acknowledged: int = 0
    stored: int = 0
    duplicated: int = 0
    lost: int = 0
    unacknowledged_stored: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    result: str = ""
    notes: str = ""

    def error(self, exc: BaseException) -> None:
        """Count one failed operation by its error class (and the driver error behind it)."""
        name = type(exc).__name__
        cause = exc.__cause__
        if cause is not None:
            name = f"{name}({type(cause).__name__})"
        self.errors[name] = self.errors.get(name, 0) + 1

    def only_storage_errors(self) -> bool:
        """Whether every failure was a ``StorageError`` wrapping a driver error."""
        return all(name.startswith("StorageError(") for name in self.errors)

    def file(self) -> Tally:
        """Add this tally to the figures of the run and return it."""
        FIGURES.append(self)
        return self


def tally_writes(tally: Tally, acknowledged: Iterable[Any], found: Iterable[Any]) -> Tally:
    """Fill ``stored``/``duplicated``/``lost`` from the markers of acked and stored records."""
    acked = set(acknowledged)
    counts: dict[Any, int] = {}
    for marker in found:
        counts[marker] = counts.get(marker, 0) + 1
    tally.stored = len(counts)
    tally.duplicated = sum(1 for n in counts.values() if n > 1)
    tally.lost = len(acked - counts.keys())
    tally.unacknowledged_stored = len(counts.keys() - acked)
    return tally


def write_figures(path: str | os.PathLike[str]) -> None:
    """Write every tally of the run to ``path`` as JSON."""
    Path(path).write_text(json.dumps([asdict(t) for t in FIGURES], indent=2) + "\n")


@contextlib.asynccontextmanager
async def fail_point(
    control: AsyncMongoClient[Any], mode: Any, data: Mapping[str, Any]
) -> AsyncIterator[None]:
    """Arm a ``failCommand`` fail point, and always switch it off afterwards."""
    await control.admin.command(
        {"configureFailPoint": "failCommand", "mode": mode, "data": dict(data)}
    )
    try:
        yield
    finally:
        await control.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class EngineProcess:
    """The embedded engine as a separate process (``secantusd-py``) on a fixed port.

    A separate process is what a test needs to stop the server and start it
    again on the same port, and it keeps the server's work out of the test
    process (its CPU and its memory, which a tracemalloc measurement would
    otherwise count).
    """

    def __init__(self, path: Path, *, port: int | None = None, args: Iterable[str] = ()) -> None:
        self.path = path
        self.port = port or free_port()
        self.args = list(args)
        self._proc: asyncio.subprocess.Process | None = None
        self.stops: list[float] = []
        self.starts: list[float] = []

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    async def start(self, *, timeout: float = 30.0) -> None:
        """Start the server and wait until it accepts connections."""
        exe = Path(sys.executable).with_name("secantusd-py")
        began = time.perf_counter()
        self._proc = await asyncio.create_subprocess_exec(
            str(exe),
            "--port",
            str(self.port),
            "--storage-path",
            str(self.path),
            "--log-level",
            "ERROR",
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        while True:
            if self._proc.returncode is not None:
                raise RuntimeError(f"secantusd-py exited with {self._proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.perf_counter() - began > timeout:
                    raise TimeoutError(f"secantusd-py did not listen on {self.port}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        self.starts.append(time.perf_counter() - began)

    async def stop(self, *, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Stop the server gracefully (SIGINT by default) and return its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        began = time.perf_counter()
        proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        self.stops.append(time.perf_counter() - began)
        return code
