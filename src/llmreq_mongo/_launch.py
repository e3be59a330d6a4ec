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

# Built-in modules (nothing to read from disk): the stop signals are taken
# before the first real import, so a Ctrl-C during this module's own imports
# (the signal module and the head start's, about 20 ms) ends in one line too.
import time

#: typing.TYPE_CHECKING without importing typing; type checkers read the
#: signal module, which is the built-in _signal and an enum of its numbers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal

_STARTED = time.monotonic()


class _Stopped(BaseException):
    """A stop signal came before the command line took the signals over."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def _end(stop: _Stopped) -> None:
    """Print the one line a stop before the command line leaves, and exit 128 + signal."""
    import sys

    # The words of _cli._app.interrupted_line, which is not imported yet.
    verb = "interrupted" if stop.signum == _signal.SIGINT else "terminated"
    print(f"{verb} after {time.monotonic() - _STARTED:.1f} s", file=sys.stderr)
    sys.exit(128 + stop.signum)


_STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM)
for _signum in _STOP_SIGNALS:
    _signal.signal(_signum, _stopped)

try:
    import os
    import sys

    from llmreq_mongo import _head_start
except _Stopped as _stop:  # SystemExit out of the console script's import: no traceback
    _end(_stop)

__all__ = ["main"]


def main() -> None:
    """Run ``llmreq`` with the process's arguments; it ends the process (``SystemExit``)."""
    for signum in _STOP_SIGNALS:
        _signal.signal(signum, _stopped)  # again: main() may run without a fresh import
    try:
        _head_start.begin(sys.argv[1:], os.environ)
        from llmreq_mongo._cli import main as command_line

        command_line()
    except _Stopped as stop:
        _end(stop)
