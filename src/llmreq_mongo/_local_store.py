"""The embedded store's files, read without the engine (standard library only).

Whether a directory holds a store, and whether another process has it open.
The command line asks both before it starts the engine; the ``llmreq``
launcher asks them before the package is even imported (``_head_start``),
so this module imports nothing but ``os`` (paths are strings or path-likes).
"""

from __future__ import annotations

import os

__all__ = ["ENV_URI", "STATE_FILE", "has_store", "in_use"]

#: The environment variable holding the MongoDB URI to use.
ENV_URI = "LLMREQ_MONGODB_URI"
#: The file ``llmreq serve`` keeps in the data directory while it runs (``_cli._served``).
STATE_FILE = "llmreq-serve.json"


def has_store(data_dir: str | os.PathLike[str]) -> bool:
    """Whether ``data_dir`` holds an embedded store (WiredTiger writes this file first)."""
    return os.path.isfile(os.path.join(data_dir, "WiredTiger"))


def in_use(data_dir: str | os.PathLike[str]) -> bool:
    """Whether another process has the store in ``data_dir`` open.

    The engine's storage library takes a POSIX record lock on
    ``WiredTiger.lock``, which a non-blocking test lock detects (where
    ``fcntl`` exists; elsewhere the answer is False and the engine itself
    refuses a store in use). A store that does not exist, or whose lock file
    cannot be opened, is not in use: the engine reports what is wrong.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        fd = os.open(os.path.join(data_dir, "WiredTiger.lock"), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the test lock
    return False
