"""The embedded engine: a MongoDB wire-protocol server started from Python.

Needs the ``embedded`` extra (``pip install "llmreq-mongo[embedded]"``), which
installs SecantusDB, a server written in Python over WiredTiger. It speaks the
same protocol as ``mongod``, so the library talks to it exactly as it talks to
MongoDB. SecantusDB is GPL-2.0 licensed; it is an optional extra and never a
runtime dependency of the library itself.

Example::

    async with EmbeddedMongo() as engine:
        handle = await llmreq_mongo.init(engine.uri)

With ``process=True`` the engine runs as a child process instead of in the
caller's process: it then has a CPU core of its own rather than sharing the
caller's interpreter, and it can be stopped and restarted on the same port,
which is what fault-injection tests need. The child never outlives the
caller: it stops by itself when the caller's process ends, even killed.

Both modes stop in a few milliseconds: the listening socket is shut down
before the engine's own stop, which would otherwise wait 2 s for its accept
thread (docs/embedded-engine.md).
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from llmreq_mongo._engine_process import (
    child_options,
    free_port,
    spawn,
    stop_child,
    stop_server,
    wait_listening,
)
from llmreq_mongo.errors import ExtraMissing, InvalidInput, StorageError

__all__ = ["EmbeddedMongo"]

#: Engine options a child process takes.
_PROCESS_OPTIONS = frozenset(
    {
        "require_auth",
        "enable_test_commands",
        "ttl_sweep_seconds",
        "tls_cert_file",
        "tls_key_file",
        "tls_ca_file",
    }
)
_START_TIMEOUT = 60.0


class EmbeddedMongo:
    """Start and stop the embedded engine.

    Args:
        path: where the data lives; a temporary directory, removed on exit,
            when None.
        durable: make every commit reach the disk before it is acknowledged,
            so a crash loses nothing acknowledged (slower writes).
        port: the TCP port on 127.0.0.1; 0 picks a free one (kept across a
            stop and a restart of the same object).
        process: run the engine as a child process.
        options: further keyword options for the engine (for example
            ``require_auth=True``, ``tls_cert_file=...``, or
            ``ttl_sweep_seconds=5``: how often TTL indexes are swept, 60 s by
            default, the first sweep coming that long after the start); a
            child process takes ``require_auth``, ``enable_test_commands``
            (fail points; off by default there, as on mongod),
            ``ttl_sweep_seconds`` and the ``tls_*_file`` options.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        durable: bool = False,
        port: int = 0,
        process: bool = False,
        **options: Any,
    ) -> None:
        if path is not None and not isinstance(path, (str, Path)):
            raise InvalidInput(f"path must be a directory path or None, got {path!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInput(f"port must be an integer from 0 to 65535, got {port!r}")
        if process and set(options) - _PROCESS_OPTIONS:
            unknown = ", ".join(sorted(set(options) - _PROCESS_OPTIONS))
            raise InvalidInput(f"a child-process engine does not take: {unknown}")
        self._path = Path(path) if path is not None else None
        self._durable = durable
        self._port = port
        self._process = process
        self._options = options
        self._server: Any = None
        self._child: subprocess.Popen[bytes] | None = None
        #: A child spawned before this object, which ``start()`` waits for.
        self._spawned: subprocess.Popen[bytes] | None = None
        self._uri: str | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def _around(
        cls, child: subprocess.Popen[bytes], path: Path, *, port: int, durable: bool
    ) -> EmbeddedMongo:
        """An engine for a child already spawned on ``path`` and ``port``.

        ``start()`` then waits for that child to listen instead of spawning
        one (``_head_start``); ``stop()`` stops it as it would its own.
        """
        engine = cls(path, durable=durable, port=port, process=True)
        engine._spawned = child
        return engine

    @property
    def uri(self) -> str:
        """The connection string of the running engine."""
        if self._uri is None:
            raise InvalidInput("the embedded engine is not running; start it first")
        return self._uri

    @property
    def port(self) -> int:
        """The TCP port the engine listens on (0 before the first start)."""
        return self._port

    @property
    def path(self) -> Path:
        """The directory holding the engine's data."""
        if self._path is not None:
            return self._path
        if self._tmp is None:
            raise InvalidInput("the embedded engine is not running; start it first")
        return Path(self._tmp.name)

    async def start(self) -> EmbeddedMongo:
        """Start the engine (about 0.1 s); returns self."""
        if self._spawned is not None:
            # The child imports the engine itself: the caller need not.
            await self._adopt(self._spawned)
            return self
        try:
            importlib.import_module("secantus")
        except ImportError as exc:
            raise ExtraMissing("embedded", feature="the embedded engine") from exc
        if self._uri is not None:
            return self
        if self._path is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="llmreq-")
            storage = self._tmp.name
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            storage = str(self._path)
        if self._process:
            await asyncio.to_thread(self._start_child, storage)
        else:
            from secantus import SecantusDBServer

            def open_and_listen() -> Any:
                # Opening the storage takes a few hundred milliseconds in C:
                # off the event loop, like the start itself.
                server = SecantusDBServer(
                    storage_path=storage,
                    port=self._port,
                    sync_on_commit=self._durable,
                    **self._options,
                )
                server.start()
                return server

            server = await asyncio.to_thread(open_and_listen)
            self._server = server
            self._port = int(server.address[1])
        self._uri = f"mongodb://127.0.0.1:{self._port}/"
        return self

    def _start_child(self, storage: str) -> None:
        if not self._port:
            self._port = free_port()
        options = child_options(storage, self._port, durable=self._durable, **self._options)
        self._listening(spawn(options, str(Path(storage, "engine.log"))), storage)

    def _listening(
        self, child: subprocess.Popen[bytes], storage: str, stop: threading.Event | None = None
    ) -> None:
        """Wait for ``child`` to listen, and keep it; stop it if it does not."""
        if wait_listening(child, self._port, timeout=_START_TIMEOUT, stop=stop):
            self._child = child
            return
        if child.poll() is not None:
            stop_child(child)
            tail = Path(storage, "engine.log").read_text(errors="replace")[-2000:]
            raise StorageError(f"the embedded engine exited at start:\n{tail}")
        if stop is not None and stop.is_set():
            stop_child(child)  # it may be opening the store: let it close it
            raise StorageError("the embedded engine's start was cancelled")
        child.kill()
        stop_child(child)
        raise StorageError(f"the embedded engine did not listen on port {self._port} in time")

    async def _adopt(self, child: subprocess.Popen[bytes]) -> None:
        self._spawned = None
        storage = str(self.path)
        cancelled = threading.Event()
        try:
            await asyncio.to_thread(self._listening, child, storage, cancelled)
        except asyncio.CancelledError:
            cancelled.set()  # the thread gives up and stops the child
            raise
        self._uri = f"mongodb://127.0.0.1:{self._port}/"

    async def stop(self) -> None:
        """Stop the engine gracefully (every acknowledged write is kept).

        A temporary store (``path=None``) is removed; a store at ``path`` stays,
        and ``start()`` brings the engine back on the same port.
        """
        self._uri = None
        child, self._child = self._child, None
        if child is not None:
            await asyncio.to_thread(stop_child, child)
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(stop_server, server)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> EmbeddedMongo:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        mode = "process" if self._process else "in-process"
        return f"EmbeddedMongo({self._uri or 'stopped'}, {mode})"
