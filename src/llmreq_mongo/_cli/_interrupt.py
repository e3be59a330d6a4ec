"""Ctrl-C and SIGTERM for every command: a prompt stop, one line, exit 130 or 143.

A command's async work runs as one task. The first SIGINT or SIGTERM cancels
that task, so its ``finally`` blocks and context managers close the client and
stop the embedded engine (which keeps every acknowledged write). Clean-up gets
:data:`GRACE_SECONDS`; if it is still running then, or a second signal comes,
the process ends at once with the same line and status. The embedded store
runs with durable commits, so ending it that way loses nothing acknowledged.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = [
    "GRACE_SECONDS",
    "Interrupted",
    "install",
    "interruptible",
    "set_last_words",
    "status_of",
]

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


class _Signals:
    """What the process knows about stop signals: the first caught, and who to tell."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.watching = False  # the watcher thread takes the signals
        self.task: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
        self.last_words: Callable[[int], str] = lambda signum: signal.Signals(signum).name
        self._lock = threading.Lock()

    def caught_one(self, signum: int) -> None:
        """A stop signal came: cancel the work, and end the process if it lingers."""
        with self._lock:
            if self.caught:  # a second Ctrl-C: do not wait for the clean-up
                self.force_exit(self.caught[0])
            self.caught.append(signum)
            timer = threading.Timer(GRACE_SECONDS, self.force_exit, args=(signum,))
            timer.daemon = True
            timer.start()
            target = self.task
        if target is not None:
            loop, task = target
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(task.cancel)
                return
        if self.watching:  # no loop running: raise Interrupted in the main thread
            _thread.interrupt_main(signal.Signals(signum))

    def force_exit(self, signum: int) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            os.write(2, (self.last_words(signum) + "\n").encode(errors="replace"))
        os._exit(status_of(signum))

    def watch(self) -> None:
        """The watcher thread: take each stop signal as it comes (see ``install``)."""
        while True:
            self.caught_one(signal.sigwait(_STOP_SIGNALS))


_SIGNALS = _Signals()


def interruptible(main: Callable[[], Awaitable[T]], *, last_words: Callable[[int], str]) -> T:
    """Run ``main()`` in a new event loop; a stop signal raises :class:`Interrupted`.

    Args:
        main: the command's work.
        last_words: the line to print if the clean-up outlasts the grace
            period and the process is ended without returning (given the signal).
    """
    signals = _SIGNALS
    signals.last_words = last_words

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        signals.task = (loop, task)
        if not signals.watching:  # called without the console script (in tests, say)
            for signum in _STOP_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, signals.caught_one, signum)
        if signals.caught:  # it came while the loop was starting
            task.cancel()
        try:
            result = await main()
        except BaseException as exc:
            if signals.caught:  # whatever the clean-up raised, the signal is the reason
                raise Interrupted(signals.caught[0]) from exc
            raise
        finally:
            signals.task = None
        if signals.caught:  # the work finished before the cancellation reached it
            raise Interrupted(signals.caught[0])
        return result

    # The loop's clean-up resets SIGINT to Python's default handler; put back
    # the one that was there, so Ctrl-C after the loop is still ours.
    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    try:
        return asyncio.run(guarded())
    except KeyboardInterrupt:  # before the handlers were installed
        raise Interrupted(signal.SIGINT) from None
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(signum, handler)
        if not signals.watching:
            signals.caught.clear()


def install() -> float:
    """Take SIGINT and SIGTERM for the whole process; returns the start time.

    Used by the console script. The signals are blocked in every thread and
    taken by one watcher thread, so a signal is acted on even while the main
    thread is busy inside a C call (the engine opening its storage, say):
    the command's task is cancelled, and the grace period is counted from
    then. Outside a command's event loop (while it starts, in a prompt), the
    main thread gets :class:`Interrupted` instead.
    """
    started = time.monotonic()

    def raise_interrupted(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        return started
    for signum in _STOP_SIGNALS:
        signal.signal(signum, raise_interrupted)  # what interrupt_main() runs
    if hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigwait"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        _SIGNALS.watching = True
        threading.Thread(target=_SIGNALS.watch, name="llmreq-signals", daemon=True).start()
    return started


def set_last_words(last_words: Callable[[int], str]) -> None:
    """The line printed if the process must be ended outside any command's work."""
    _SIGNALS.last_words = last_words
