"""One recorder per spill file: an exclusive lock on a file beside it.

Two recorders on one spill file lose records (one replays and removes the
file while the other appends to it), so :class:`SpillLock` takes
``fcntl.flock`` on ``<spill file>.lock`` for as long as the recorder runs.
``flock`` locks belong to an open file, so a second recorder in the same
process is refused as surely as one in another process, and the kernel
releases the lock of a process that dies.

These functions block on disk I/O: the recorder calls them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from llmreq_mongo.errors import SpillFileInUse

__all__ = ["SpillLock", "lock_path"]


def lock_path(path: Path) -> Path:
    """The lock file of the spill file ``path``: beside the file it names.

    The path is resolved first, so two recorders that name one file by two
    paths (a symbolic link, ``..``) take the same lock.
    """
    real = path.resolve()
    return real.with_name(real.name + ".lock")


class SpillLock:
    """The exclusive lock of one spill file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or refuse at once.

        Raises:
            SpillFileInUse: another recorder holds it.
            OSError: the lock file cannot be created (a read-only directory).
        """
        target = lock_path(self.path)
        while True:
            fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SpillFileInUse(self.path) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder removes the lock file when it lets go: a lock taken
            # on a file already unlinked guards nothing, so try again.
            try:
                same = os.stat(target).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and let the lock go (nothing if not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            lock_path(self.path).unlink(missing_ok=True)
        except OSError:
            pass  # the kernel still drops the lock when the file is closed
        finally:
            os.close(fd)
