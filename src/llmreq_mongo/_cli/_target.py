"""Where ``llmreq export -o`` writes: a file replaced whole, or a stream written through.

A regular file (or a name that does not exist yet) is written beside itself
under a temporary name and renamed over the target at the end, so a failed
export never leaves a truncated file where a good one was expected. The
rename happens where the file really is: a symlink is followed, and the link
stays a link. An existing file keeps its permission bits; a new one gets the
usual ``0o666`` less the umask, as ``open()`` would give it.

Anything else (a FIFO, ``/dev/stdout``, ``/dev/full``, a terminal, any
character device) is not a file that can be replaced: it is opened and
written straight through, and left in place.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from llmreq_mongo.errors import InvalidInput

__all__ = ["checked_target", "named_errors", "open_target"]


def checked_target(output: str) -> Path | None:
    """The ``-o`` value as a path (None for ``-``, stdout), refused when unusable.

    Raises:
        InvalidInput: a directory, or a new file in a directory that does not exist.
    """
    if output == "-":
        return None
    target = Path(output)
    if target.is_dir():
        raise InvalidInput(f"-o {output} is a directory; give a file name")
    if not target.exists():
        real = Path(os.path.realpath(target))
        if not real.parent.is_dir():
            raise InvalidInput(f"-o {output}: the directory {real.parent} does not exist")
    return target


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_target(target: Path | None, *, newline: str) -> Iterator[IO[str]]:
    """A text stream to write the export to; the target holds it once the block ends well.

    If the block raises, a regular file target is left exactly as it was, and
    the stream is closed without a second error about what it could not flush.
    """
    if target is None:
        yield sys.stdout
        return
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        with named_errors(target):
            stream = open(target, "w", encoding="utf-8", newline=newline)  # noqa: SIM115
        with _closing(stream, target):
            yield stream
        return
    real = Path(os.path.realpath(target))
    with named_errors(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", dir=real.parent)
    try:
        os.chmod(fd, stat.S_IMODE(info.st_mode) if info else 0o666 & ~_current_umask())
        stream = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        with _closing(stream, target):
            yield stream
        os.replace(tmp, real)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _closing(stream: IO[str], target: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):  # the block's error is the one to report
            stream.close()
        raise
    with named_errors(target):
        stream.close()


@contextlib.contextmanager
def named_errors(target: Path | None) -> Iterator[None]:
    """Put the target's name on an OS error that lacks one (a failed write or flush)."""
    try:
        yield
    except OSError as exc:
        if target is None or exc.filename is not None or exc.errno is None:
            raise
        # OSError() picks the subclass from errno (BrokenPipeError stays one).
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
