"""The ``llmreq`` console script: the engine's head start, then the command line.

The command line takes about half a second to import. Before importing it,
:func:`main` asks ``_head_start`` whether this run will open the default
embedded store and, if so, spawns the engine's child process, which then
starts while the imports run. This module and what it imports first use the
standard library only.

Ctrl-C (or SIGTERM) during those imports ends the process as it does later
(``_cli._interrupt``, which takes the signals over once the command line is
imported): one line on stderr and status 130 (143), not a traceback; a
head-started engine is stopped on the way out.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from llmreq_mongo import _head_start

__all__ = ["main"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stopped(BaseException):
    """A stop signal came before the command line took the signals over."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def main() -> None:
    """Run ``llmreq`` with the process's arguments; it ends the process (``SystemExit``)."""
    started = time.monotonic()
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stopped)
    try:
        _head_start.begin(sys.argv[1:], os.environ)
        from llmreq_mongo._cli import main as command_line

        command_line()
    except _Stopped as stop:
        # The words of _cli._app.interrupted_line, which is not imported yet.
        verb = "interrupted" if stop.signum == signal.SIGINT else "terminated"
        print(f"{verb} after {time.monotonic() - started:.1f} s", file=sys.stderr)
        sys.exit(128 + stop.signum)
