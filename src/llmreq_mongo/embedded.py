"""The embedded engine: a MongoDB wire-protocol server started from Python.

Needs the ``embedded`` extra (``pip install "llmreq-mongo[embedded]"``), which
installs SecantusDB, a server written in Python over WiredTiger. It speaks the
same protocol as ``mongod``, so the library talks to it exactly as it talks to
MongoDB. SecantusDB is GPL-2.0 licensed; it is an optional extra and never a
runtime dependency of the library itself.

Example::

    async with EmbeddedMongo() as engine:
        handle = await llmreq_mongo.init(engine.uri)
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EmbeddedEngineMissing, InvalidInput

__all__ = ["EmbeddedMongo"]


class EmbeddedMongo:
    """Start and stop the embedded engine.

    Args:
        path: where the data lives; a temporary directory, removed on exit,
            when None.
        durable: make every commit reach the disk before it is acknowledged,
            so a crash loses nothing acknowledged (slower writes).
        port: the TCP port on 127.0.0.1; 0 picks a free one.
        options: further keyword options for the engine (for example
            ``require_auth=True`` or ``tls_cert_file=...``).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        durable: bool = False,
        port: int = 0,
        **options: Any,
    ) -> None:
        if path is not None and not isinstance(path, (str, Path)):
            raise InvalidInput(f"path must be a directory path or None, got {path!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidInput(f"port must be an integer from 0 to 65535, got {port!r}")
        self._path = Path(path) if path is not None else None
        self._durable = durable
        self._port = port
        self._options = options
        self._server: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def uri(self) -> str:
        """The connection string of the running engine."""
        if self._server is None:
            raise InvalidInput("the embedded engine is not running; start it first")
        return str(self._server.uri)

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
        try:
            from secantus import SecantusDBServer
        except ImportError as exc:
            raise EmbeddedEngineMissing(
                "the embedded engine needs the 'embedded' extra: "
                'pip install "llmreq-mongo[embedded]"'
            ) from exc
        if self._server is not None:
            return self
        if self._path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="llmreq-")
            storage = self._tmp.name
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            storage = str(self._path)
        server = SecantusDBServer(
            storage_path=storage,
            port=self._port,
            sync_on_commit=self._durable,
            **self._options,
        )
        await asyncio.to_thread(server.start)
        self._server = server
        return self

    async def stop(self) -> None:
        """Stop the engine gracefully (every acknowledged write is kept)."""
        server, self._server = self._server, None
        if server is not None:
            # The engine logs a harmless traceback while closing its storage
            # (its oplog metadata is written after the store is closed).
            noisy = logging.getLogger("secantus.storage.close")
            level = noisy.level
            noisy.setLevel(logging.CRITICAL)
            try:
                await asyncio.to_thread(server.stop)
            finally:
                noisy.setLevel(level)
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
        state = self.uri if self._server is not None else "stopped"
        return f"EmbeddedMongo({state})"
