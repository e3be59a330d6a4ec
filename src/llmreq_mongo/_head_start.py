"""A head start for the embedded engine: spawned before the command line is imported.

A short command on its own embedded store spends about half a second
starting the engine (``import secantus``, then ``wiredtiger_open``) and about
as long importing the command line (Pydantic, Beanie, PyMongo, Typer, Rich).
The ``llmreq`` launcher (``_launch``) calls :func:`begin` first: when the
command line is sure to open the default embedded store, it spawns the
engine's child process at once, without waiting for it, and the two starts
overlap. ``store()`` then :func:`take` s that child instead of starting the
engine itself.

The guess is read from the arguments and the environment only, and errs on
the side of no head start: any doubt leaves the run exactly as it would be
without one. A wrong guess (a usage error, a command that never reaches the
store) costs the child's start, never correctness: the child is stopped
gracefully before the process exits, and it stops by itself if the process
is killed (its standard input is a pipe, ``_engine_process``).

This module imports only the standard library and the package's other
standard-library modules, so the launcher runs it before anything heavy.
"""

from __future__ import annotations

import atexit
import contextlib
import os

from llmreq_mongo._engine_process import child_options, free_port, spawn, stop_child
from llmreq_mongo._local_store import ENV_URI, STATE_FILE, has_store, in_use

#: typing.TYPE_CHECKING without importing typing, dataclasses or pathlib:
#: what this module imports delays the engine's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence

__all__ = ["COMMANDS", "HeadStart", "begin", "command_of", "guess", "take"]

#: The commands that always open the store through ``store()`` and create
#: nothing: the read commands (and ``prune`` and ``retention``, which change
#: records but not the store's existence). ``demo``, ``import`` and ``serve``
#: may create the store, and ``serve`` and ``ui`` run for long with options
#: of their own; none of them gets a head start.
COMMANDS = frozenset(
    {
        "aggregate",
        "clients",
        "export",
        "latency",
        "prune",
        "retention",
        "sessions",
        "show",
        "stats",
        "tail",
    }
)
#: The global options that take a value, and the flags (``_cli._app._global``).
_VALUED = frozenset({"--uri", "--database", "--timeout", "--data-dir"})
_FLAGS = frozenset({"--json", "--debug"})
#: Any of these anywhere means no store is opened, or not this way.
_NEVER = frozenset({"--help", "-h", "--version", "--uri", "--"})
_DEFAULT_DATA_DIR = ".llmreq-data"


def command_of(argv: Sequence[str]) -> tuple[str, dict[str, str]] | None:
    """The command named in ``argv``, and the global options before it.

    Reads ``llmreq``'s global options (``--opt VALUE`` and ``--opt=VALUE``
    forms, the two flags) up to the first word that is not one, the command.

    Returns:
        The command and the options (``{"--data-dir": "x"}``; a flag maps to
        ""), or None: no command, or an option before it that is not a
        global option (``--help``, ``--version``, a misspelling).
    """
    options: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        name, equals, value = arg.partition("=")
        if name in _VALUED:
            options[name] = value if equals else next(args, "")
        elif arg in _FLAGS:
            options[arg] = ""
        elif arg.startswith("-"):
            return None
        else:
            return arg, options
    return None


class HeadStart:
    """An engine child spawned for ``data_dir`` (absolute), listening (soon) on ``port``."""

    __slots__ = ("child", "data_dir", "port")

    def __init__(self, child: subprocess.Popen[bytes], data_dir: str, port: int) -> None:
        self.child = child
        self.data_dir = data_dir
        self.port = port


_started: HeadStart | None = None


def guess(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The data directory this run will open the embedded store in, if it surely will.

    Args:
        argv: the arguments after the program's name.
        environ: the environment.

    Returns:
        The absolute data directory, or None: a URI is configured, help or
        the version is asked for, the command is not one of :data:`COMMANDS`,
        an option is not one this reader knows, there is no store there,
        ``llmreq serve`` may be serving it, or another process has it open.
    """
    if ENV_URI in environ:
        return None
    if any(arg in _NEVER or arg.startswith("--uri=") for arg in argv):
        return None
    found = command_of(argv)
    if found is None or found[0] not in COMMANDS:
        return None
    data_dir = found[1].get("--data-dir", _DEFAULT_DATA_DIR)
    if not data_dir:
        return None
    where = os.path.abspath(data_dir)
    if not has_store(where) or os.path.exists(os.path.join(where, STATE_FILE)) or in_use(where):
        return None
    return where


def begin(argv: Sequence[str], environ: Mapping[str, str]) -> HeadStart | None:
    """Spawn the engine child now if :func:`guess` says this run will open the store.

    Never raises: if anything goes wrong, there is simply no head start.
    """
    global _started
    if _started is not None:
        return _started
    try:
        where = guess(argv, environ)
        if where is None:
            return None
        port = free_port()
        options = child_options(where, port, durable=True)
        child = spawn(options, os.path.join(where, "engine.log"))
    except Exception:
        return None
    _started = HeadStart(child=child, data_dir=where, port=port)
    atexit.register(_finish)
    return _started


def take(data_dir: str | os.PathLike[str]) -> HeadStart | None:
    """The head-started child, if it serves ``data_dir`` and no one took it yet.

    The taker stops it; if the taker does not get that far, the process
    stops it on its way out.
    """
    global _started
    started = _started
    if started is None or started.child.poll() is not None:
        return None
    try:
        same = os.path.abspath(data_dir) == started.data_dir
    except (OSError, ValueError):
        same = False
    if not same:
        return None
    _started = None
    atexit.register(stop_child, started.child)
    return started


def _finish() -> None:
    """At exit: stop a child that no command took (the guess was wrong)."""
    global _started
    started, _started = _started, None
    if started is not None:
        with contextlib.suppress(Exception):
            stop_child(started.child)
