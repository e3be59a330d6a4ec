"""The embedded engine's child process, and the fast stop both modes use.

:class:`~llmreq_mongo.embedded.EmbeddedMongo` with ``process=True`` runs this
file as a script (``python _engine_process.py OPTIONS_JSON``), not as a module
of the package: the child then imports only the engine, not the library and
its ODM, and starts sooner. It stands for SecantusDB's own launcher because
that one takes no TTL sweep interval and stops slowly (see
:func:`stop_server`).

The child serves until SIGTERM or SIGINT, or until its standard input
reaches end of file, then stops gracefully: every acknowledged write is kept
and the storage is closed cleanly. :func:`spawn` gives it a pipe as standard
input and keeps the other end, so when the parent ends, however it ends
(``kill -9`` included), the pipe closes and the child stops by itself instead
of holding the store's lock. It runs in a session of its own, so a Ctrl-C at
the terminal reaches only the parent, which then stops it in order.

This module imports nothing from the package (the ``llmreq`` launcher spawns
the child before the package is imported), so it stays runnable as a plain
script.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

#: typing.TYPE_CHECKING without importing typing (nor logging and pathlib
#: below): the ``llmreq`` launcher spawns the child after importing this
#: module, so what it imports delays the engine's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "child_options",
    "free_port",
    "main",
    "spawn",
    "stop_child",
    "stop_server",
    "wait_listening",
]

#: The flag that makes the child stop when its standard input ends.
_STOP_ON_EOF = "--stop-on-eof"
#: Seconds between two looks at whether the child listens yet.
_POLL = 0.01


def stop_server(server: Any) -> None:
    """Stop a SecantusDB server promptly.

    The server's ``stop()`` closes its listening socket (``server._socket``)
    and then joins the accept thread for up to 2 s. On Linux, closing a socket
    does not wake a thread blocked in ``accept()`` on it, so every stop waits
    the full 2 s and leaves that thread behind. Shutting the socket down first
    makes the blocked ``accept()`` fail at once, so the thread ends and the
    stop takes a few milliseconds (docs/embedded-engine.md).
    """
    import logging

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def child_options(storage: str, port: int, *, durable: bool, **options: Any) -> dict[str, Any]:
    """The engine options of a child serving ``storage`` on 127.0.0.1:``port``.

    Test commands (fail points) are off unless ``options`` turn them on, as
    on mongod; ``durable`` makes every commit reach the disk before it is
    acknowledged.
    """
    chosen: dict[str, Any] = {"enable_test_commands": False, **options}
    chosen.update(host="127.0.0.1", port=port, storage_path=storage, sync_on_commit=durable)
    return chosen


def spawn(options: dict[str, Any], log: str) -> subprocess.Popen[bytes]:
    """Start the child with the engine ``options``, without waiting for it to listen.

    Its output goes to ``log``. Its standard input is a pipe the returned
    ``Popen`` holds: closing it (or the parent's end) stops the child.
    """
    # -I keeps the launcher's own directory (this package's modules) off
    # the child's sys.path, where they would shadow top-level names.
    args = [sys.executable, "-I", os.path.abspath(__file__), json.dumps(options), _STOP_ON_EOF]
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def wait_listening(
    child: subprocess.Popen[bytes],
    port: int,
    *,
    timeout: float,
    stop: threading.Event | None = None,
) -> bool:
    """Wait until ``child`` accepts connections on ``port``.

    Returns:
        True once it listens; False if it exited first, if ``timeout``
        seconds passed, or if ``stop`` was set.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        if child.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(_POLL)
            continue
        return True
    return False


def stop_child(child: subprocess.Popen[bytes]) -> None:
    """Stop a child gracefully (SIGTERM closes its storage), or kill it after 30 s."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    if child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()


def _stop_on_eof(stopping: threading.Event) -> None:
    """Read standard input until it ends (the parent is gone), then ask for the stop."""
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read
    # would hold the stream's lock while the interpreter shuts down.
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    stopping.set()
    if hasattr(signal, "sigwait"):
        # A signal to the process, which the main thread's sigwait() takes.
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    """Serve with the engine options given as one JSON object in ``argv[1]``.

    With ``--stop-on-eof`` after it, the child also stops when its standard
    input ends.
    """
    import logging

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
    if _STOP_ON_EOF in argv[2:]:
        threading.Thread(
            target=_stop_on_eof, args=(stopping,), name="llmreq-stdin", daemon=True
        ).start()
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


def _exit(status: int) -> None:
    """End the child once its storage is closed, skipping the interpreter's teardown.

    Everything that matters is done by then (the store is closed, so its lock
    is released); tearing down the engine's modules and threads would add
    about 0.1 s to every stop the parent waits for.
    """
    import logging

    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit(main(sys.argv))
