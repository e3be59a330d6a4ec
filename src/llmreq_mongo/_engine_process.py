"""The embedded engine's child process, and the fast stop both modes use.

:class:`~llmreq_mongo.embedded.EmbeddedMongo` with ``process=True`` runs this
file as a script (``python _engine_process.py OPTIONS_JSON``), not as a module
of the package: the child then imports only the engine, not the library and
its ODM, and starts sooner. It stands for SecantusDB's own launcher because
that one takes no TTL sweep interval and stops slowly (see
:func:`stop_server`).

The child serves until SIGTERM or SIGINT, then stops gracefully: every
acknowledged write is kept and the storage is closed cleanly. This module
imports nothing from the package, so it stays runnable as a plain script.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from typing import Any

__all__ = ["main", "stop_server"]


def stop_server(server: Any) -> None:
    """Stop a SecantusDB server promptly.

    The server's ``stop()`` closes its listening socket (``server._socket``)
    and then joins the accept thread for up to 2 s. On Linux, closing a socket
    does not wake a thread blocked in ``accept()`` on it, so every stop waits
    the full 2 s and leaves that thread behind. Shutting the socket down first
    makes the blocked ``accept()`` fail at once, so the thread ends and the
    stop takes a few milliseconds (docs/embedded-engine.md).
    """
    listener = getattr(server, "_socket", None)
    if isinstance(listener, socket.socket):
        with contextlib.suppress(OSError):  # not connected, or already closed
            listener.shutdown(socket.SHUT_RDWR)
    # The engine logs a harmless traceback while closing its storage (its
    # oplog metadata is written after the store is closed).
    noisy = logging.getLogger("secantus.storage.close")
    level = noisy.level
    noisy.setLevel(logging.CRITICAL)
    try:
        server.stop()
    finally:
        noisy.setLevel(level)


def main(argv: list[str]) -> int:
    """Serve with the engine options given as one JSON object in ``argv[1]``."""
    options: dict[str, Any] = json.loads(argv[1])
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    stopping = threading.Event()
    if hasattr(signal, "pthread_sigmask"):
        # Block the stop signals before any engine thread exists, so every
        # thread inherits the mask and the main thread alone takes them.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    else:  # Windows
        for signum in stop_signals:
            signal.signal(signum, lambda *_: stopping.set())
    from secantus import SecantusDBServer

    server = SecantusDBServer(**options)
    server.start()
    if hasattr(signal, "sigwait"):
        signal.sigwait(stop_signals)
    else:
        while not stopping.wait(0.5):
            pass
    stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
