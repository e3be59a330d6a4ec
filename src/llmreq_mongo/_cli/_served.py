"""The state file ``llmreq serve`` leaves in its data directory.

While ``llmreq serve`` runs, ``<data dir>/llmreq-serve.json`` holds its URI and
process id. A command pointed at the same store reads it and connects to the
running server instead of opening the store itself, which the engine's lock
would refuse. The file is trusted only while it is provably current: its
process is alive and its port accepts connections. A stale file (the server
was killed) is ignored and replaced by the next ``llmreq serve``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from llmreq_mongo._local_store import STATE_FILE

__all__ = ["STATE_FILE", "Served", "remove_state", "running_server", "write_state"]

_PROBE_TIMEOUT = 1.0


@dataclass(frozen=True)
class Served:
    """A running ``llmreq serve``: where it listens and which process it is."""

    uri: str
    port: int
    pid: int


def write_state(data_dir: Path, served: Served) -> Path:
    """Record ``served`` in ``data_dir``, atomically (a reader sees all or nothing)."""
    target = data_dir / STATE_FILE
    partial = data_dir / f".{STATE_FILE}.{os.getpid()}"
    text = json.dumps({"uri": served.uri, "port": served.port, "pid": served.pid})
    partial.write_text(text + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target


def remove_state(data_dir: Path, *, pid: int) -> None:
    """Remove the state file if it is still the one process ``pid`` wrote."""
    target = data_dir / STATE_FILE
    found = _read(target)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def running_server(data_dir: Path) -> Served | None:
    """The live server recorded in ``data_dir``, or None (no file, or a stale one)."""
    found = _read(data_dir / STATE_FILE)
    if found is None or not _alive(found.pid):
        return None
    try:
        socket.create_connection(("127.0.0.1", found.port), timeout=_PROBE_TIMEOUT).close()
    except OSError:
        return None  # a reused process id, or a server that is going away
    return found


def _read(path: Path) -> Served | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    uri, port, pid = data.get("uri"), data.get("port"), data.get("pid")
    if not (isinstance(port, int) and isinstance(pid, int) and 0 < port < 65536 and pid > 0):
        return None
    if uri != _local_uri(port):
        return None  # only a local engine may be recorded here
    return Served(uri=uri, port=port, pid=pid)


def _local_uri(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/"


def _alive(pid: int) -> bool:
    if os.name == "nt":  # signal 0 is CTRL_C_EVENT there: rely on the port probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return False
    return True
