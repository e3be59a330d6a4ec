"""Ctrl-C and SIGTERM for every command: a prompt stop, one line, exit 130 or 143.

A command's async work runs as one task. The first SIGINT or SIGTERM cancels
that task, so its ``finally`` blocks and context managers close the client and
stop the embedded engine (which keeps every acknowledged write). Clean-up gets
:data:`GRACE_SECONDS`; if it is still running then, or a second signal comes,
the process ends at once with the same line and status. The embedded store
runs with durable commits, so ending it that way loses nothing acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["GRACE_SECONDS", "Interrupted", "interruptible", "status_of"]

T = TypeVar("T")
#: Seconds a command may spend cleaning up after Ctrl-C before it is ended.
GRACE_SECONDS = 5.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The command was stopped by a signal.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except
    Exception`` on the way swallows it; and not a ``KeyboardInterrupt``, which
    Click would turn into "Aborted!" and status 1.

    Attributes:
        signum: the signal (``SIGINT`` for Ctrl-C, or ``SIGTERM``).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def status_of(signum: int) -> int:
    """The shell's exit status for a command a signal stopped (130 for Ctrl-C)."""
    return 128 + signum


def interruptible(main: Callable[[], Awaitable[T]], *, last_words: Callable[[int], str]) -> T:
    """Run ``main()`` in a new event loop; a stop signal raises :class:`Interrupted`.

    Args:
        main: the command's work.
        last_words: the line to print when the grace period runs out and the
            process must end without returning (given the signal).
    """
    caught: list[int] = []
    watchdog: list[threading.Timer] = []

    def force_exit(signum: int) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            os.write(2, (last_words(signum) + "\n").encode(errors="replace"))
        os._exit(status_of(signum))

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            if caught:  # a second Ctrl-C: do not wait for the clean-up
                force_exit(caught[0])
            caught.append(signum)
            task.cancel()
            timer = threading.Timer(GRACE_SECONDS, force_exit, args=(signum,))
            timer.daemon = True
            timer.start()
            watchdog.append(timer)

        for signum in _STOP_SIGNALS:
            # Not in the main thread, or on Windows: Ctrl-C stays a
            # KeyboardInterrupt, which the caller handles too.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, on_signal, signum)
        try:
            result = await main()
        except BaseException as exc:
            if caught:  # whatever the clean-up raised, the signal is the reason
                raise Interrupted(caught[0]) from exc
            raise
        if caught:  # the work finished before the cancellation reached it
            raise Interrupted(caught[0])
        return result

    # The loop's clean-up resets SIGINT to Python's default handler; put back
    # the one that was there, so Ctrl-C after the loop is still ours.
    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    try:
        return asyncio.run(guarded())
    except KeyboardInterrupt:  # before the handlers were installed
        raise Interrupted(signal.SIGINT) from None
    finally:
        for timer in watchdog:
            timer.cancel()
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(signum, handler)


def install_process_handler() -> float:
    """Make SIGINT raise :class:`Interrupted` anywhere in the process; returns the start time.

    Used by the console script, so that Ctrl-C outside a command's event loop
    (while it starts, or in a prompt) also ends with one line and status 130.
    """

    def raise_interrupted(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, raise_interrupted)
    return time.monotonic()
