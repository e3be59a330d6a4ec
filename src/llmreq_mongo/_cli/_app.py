"""The ``llmreq`` application: global options, the store, and error reporting.

Every command runs against the store the global options name: ``--uri`` (or
``LLMREQ_MONGODB_URI``), else the embedded store in ``--data-dir``
(``./.llmreq-data``). When ``llmreq serve`` is running on that store, the
command connects to it; otherwise it starts the engine itself, with durable
commits so nothing acknowledged is lost on a crash. Only the commands that
write (``demo``, ``import``, ``serve``) create a store that does not exist yet.

Errors are one line on stderr and exit status 1; ``--debug`` adds the
traceback. Usage errors (a misspelt option, a bad value) are two lines, the
error and where to find help, with exit status 2. A password in the URI is
never printed, traceback included. Ctrl-C stops any command within a few
seconds, with one line saying how far it got and status 130 (``_interrupt``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shlex
import signal
import sys
import time
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pymongo import AsyncMongoClient
from pymongo.errors import (
    ConnectionFailure,
    InvalidName,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment

from llmreq_mongo import _head_start
from llmreq_mongo._connection import ENV_URI, Handle, client_for, init
from llmreq_mongo._local_store import has_store, in_use
from llmreq_mongo._reports.shown import written_out
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import InvalidInput, LLMReqError, StorageError

from ._interrupt import Interrupted, install, interruptible, set_last_words, status_of
from ._served import running_server
from ._usage import ShortUsageGroup

__all__ = [
    "CREATING_COMMANDS",
    "DEFAULT_DATA_DIR",
    "NO_STORE",
    "JsonFlag",
    "Settings",
    "app",
    "interrupted_line",
    "redact",
    "reported",
    "run",
    "run_main",
    "settings_of",
    "store",
]

T = TypeVar("T")
DEFAULT_DATA_DIR = Path(".llmreq-data")
#: The commands that may create the embedded store; every other one refuses to.
CREATING_COMMANDS = frozenset({"demo", "import", "serve"})
NO_STORE = "no store here: run `llmreq demo`, or pass `--uri`"
_PIPE_WIDTH = 160


app = typer.Typer(
    name="llmreq",
    cls=ShortUsageGroup,
    # Plain Click help: flags shown as flags, not as typed values.
    rich_markup_mode=None,
    help="Inspect and manage the request history of LLM clients kept in MongoDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: The ``--json`` flag every read command takes (the global ``llmreq --json`` works too).
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@dataclass(frozen=True)
class Settings:
    """The global options, shared by every command."""

    uri: str | None
    database: str
    json: bool
    debug: bool
    timeout: float = 5.0
    data_dir: Path = DEFAULT_DATA_DIR
    #: The command being run (``retention`` for ``retention set``).
    command: str | None = None

    @property
    def console(self) -> Console:
        """Where results go (stdout).

        Piped or redirected output gets 160 columns instead of Rich's 80, so
        tables of 32-character session keys and full timestamps stay whole.
        """
        tty = sys.stdout.isatty()
        return _Output(highlight=False, width=None if tty else _PIPE_WIDTH)

    @property
    def err(self) -> Console:
        """Where progress and notes go (stderr), so stdout stays clean for pipes."""
        return Console(stderr=True, highlight=False, soft_wrap=True)

    def wants_json(self, flag: bool) -> bool:
        """Whether a command prints JSON: its own ``--json`` or the global one."""
        return flag or self.json


def _version() -> str:
    try:
        return version("llmreq-mongo")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        print(f"llmreq {_version()}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Option(
            envvar=ENV_URI,
            help=f"MongoDB URI (or {ENV_URI}). Default: the embedded engine in ./.llmreq-data.",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    database: Annotated[str, typer.Option(help="Database name.")] = "llmreq",
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=600, help="Seconds to wait for the server.")
    ] = 5.0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            file_okay=False,
            help="Where the embedded store lives, when no --uri is given.",
        ),
    ] = DEFAULT_DATA_DIR,
) -> None:
    ctx.obj = Settings(
        uri=uri or None,
        database=database,
        json=json,
        debug=debug,
        timeout=timeout,
        data_dir=data_dir,
        command=ctx.invoked_subcommand,
    )


def settings_of(ctx: typer.Context) -> Settings:
    """The global options of the running command."""
    obj: object = ctx.find_root().obj
    if not isinstance(obj, Settings):  # a command invoked without the callback
        return Settings(
            uri=os.environ.get(ENV_URI) or None, database="llmreq", json=False, debug=False
        )
    return obj


# -- secrets ------------------------------------------------------------------

_USERINFO = re.compile(r"(mongodb(?:\+srv)?://)([^@/?#\s]*)@", re.IGNORECASE)


def redact(text: str, uri: str | None = None) -> str:
    """``text`` with every password of a MongoDB URI replaced by ``***``.

    Passwords written in any URI inside ``text`` are masked, and so is the
    password of ``uri`` wherever it appears (raw or percent-decoded).
    """

    def mask(match: re.Match[str]) -> str:
        user = match.group(2).split(":", 1)[0]
        return f"{match.group(1)}{user}:***@" if ":" in match.group(2) else match.group(0)

    secrets: list[str] = []
    if uri:
        found = _USERINFO.search(uri)
        if found and ":" in found.group(2):
            raw = found.group(2).split(":", 1)[1]
            secrets.extend(s for s in {raw, urllib.parse.unquote(raw)} if s)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _USERINFO.sub(mask, text)


def _where(uri: str) -> str:
    """The hosts part of a URI, for messages (no credentials, no options)."""
    rest = uri.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0]


def _message(exc: BaseException, settings: Settings) -> str:
    cause = exc.__cause__
    if isinstance(exc, StorageError) and isinstance(
        cause, (ServerSelectionTimeoutError, ConnectionFailure)
    ):
        reason = str(cause).split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
        where = _where(settings.uri) if settings.uri else "the embedded engine"
        return (
            f"cannot reach MongoDB at {where} (gave up after {settings.timeout:g} s): {reason}; "
            "check --uri and that the server is running"
        )
    if (
        isinstance(exc, StorageError)
        and isinstance(cause, OperationFailure)
        and cause.code in (13, 18)
    ):
        return f"MongoDB refused the credentials or the permission: {cause.details or cause}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, LLMReqError):
        text = f"{exc.strerror or text}" + (f": {exc.filename}" if exc.filename else "")
    return text


#: The exit status of a command whose reader went away: a shell's for SIGPIPE (128 + 13).
_PIPE_CLOSED = 141


def _stdout_gone() -> None:
    """The reader went away (`llmreq show ... | head`): stop writing quietly.

    Standard output goes to /dev/null from here, which keeps Python from
    complaining when it flushes stdout on the way out.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _Output(Console):
    """Rich's console for results, ending the command on a closed pipe as ``reported`` does.

    Rich catches the ``BrokenPipeError`` of its own writes and exits with status
    1, which says the command failed; every command exits with 141 instead.

    What it prints is written out where it would act on the terminal
    (:func:`~llmreq_mongo._reports.shown.written_out`): a recorded message
    holding ``ESC [2J`` would clear the reader's screen, and Rich passes
    escape sequences in text through. Rich's own styles are not text, and
    are left alone; newlines and tabs are kept.
    """

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None:
                shown = written_out(segment.text, lines=True)
                if shown is not segment.text:
                    segment = Segment(shown, segment.style)
            yield segment

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _stdout_gone()
        raise SystemExit(_PIPE_CLOSED)


@contextlib.contextmanager
def reported(settings: Settings) -> Iterator[None]:
    """Turn a library or OS error into one line on stderr and exit status 1."""
    try:
        yield
    except BrokenPipeError:
        _stdout_gone()
        raise typer.Exit(_PIPE_CLOSED) from None
    except (LLMReqError, OSError) as exc:
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        if settings.debug:
            lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
            err.print(redact("".join(lines), settings.uri), markup=False, end="")
        err.print(f"error: {redact(_message(exc, settings), settings.uri)}", markup=False)
        raise typer.Exit(1) from None


# -- the store ----------------------------------------------------------------


def _client(settings: Settings, uri: str) -> AsyncMongoClient[dict[str, Any]]:
    client = client_for(
        uri,
        serverSelectionTimeoutMS=int(settings.timeout * 1000),
        connectTimeoutMS=int(settings.timeout * 1000),
        appname="llmreq",
    )
    try:
        client.get_database(settings.database)
    except InvalidName as exc:
        raise InvalidInput(f"--database {settings.database!r} is not a valid name: {exc}") from None
    return client


async def _head_started(data_dir: Path) -> EmbeddedMongo | None:
    """The engine the ``llmreq`` launcher spawned for ``data_dir``, once it listens.

    None if there is none, or if it did not start (another process took the
    store meanwhile, say): the caller then starts the engine as usual.
    """
    started = _head_start.take(data_dir)
    if started is None:
        return None
    engine = EmbeddedMongo._around(
        started.child, Path(started.data_dir), port=started.port, durable=True
    )
    try:
        await engine.start()
    except StorageError:
        return None
    return engine


#: Words of the storage library's errors: another process holds the store's lock.
_LOCKED = ("Device or resource busy", "Resource temporarily unavailable", "already being managed")
#: Words of its errors about damaged files (``WT_TRY_SALVAGE``, ``WT_PANIC``, a
#: metadata file cut short: ``WT_NOTFOUND``, checksum and read errors).
_DAMAGED = ("WT_TRY_SALVAGE", "WT_PANIC", "WT_NOTFOUND", "WT_ERROR", "corrupt", "checksum")
#: Where the engine's own messages go, in the data directory (the head
#: start's child writes its output there too).
ENGINE_LOG = "engine.log"


def _in_use_message(data_dir: Path) -> str:
    return (
        f"the embedded store in {data_dir}/ is in use by another process (another "
        "llmreq, say `llmreq tail`); stop it, or run a server both can share and "
        "pass --uri"
    )


def _damaged(data_dir: Path, what: str) -> str:
    """The one line for a store the engine cannot read: what to do, and where the details are."""
    return (
        f"the embedded store in {data_dir}/ looks damaged ({what}); move it aside "
        f"(mv {shlex.quote(str(data_dir))} {shlex.quote(f'{data_dir}.damaged')}) "
        "or restore a copy of it, then run again; "
        f"the engine's messages are in {data_dir / ENGINE_LOG}"
    )


def _internal_error(exc: StorageError) -> bool:
    """Whether the server failed on its own data (``InternalError``, code 1), not on the request."""
    cause = exc.__cause__
    return isinstance(cause, OperationFailure) and cause.code == 1


def _check_not_in_use(data_dir: Path) -> None:
    """Refuse, in one line, a store another process has open.

    The engine's storage library would say so too, but in several lines of its
    own on stderr (see :func:`~llmreq_mongo._local_store.in_use`).
    """
    if in_use(data_dir):
        raise StorageError(_in_use_message(data_dir))


@contextlib.contextmanager
def _engine_output(settings: Settings) -> Iterator[None]:
    """Send what the storage library writes on stderr, while it opens, to ``engine.log``.

    WiredTiger reports a damaged file or a held lock in dozens of lines of
    its own (timestamps, hex dumps) written straight to file descriptor 2,
    before the error this command turns into one line. Those lines are kept
    in the data directory's log, where the head start's child writes too;
    ``--debug`` leaves them on the terminal. If the log cannot be opened,
    nothing is redirected.
    """
    if settings.debug:
        yield
        return
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = os.open(settings.data_dir / ENGINE_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        yield
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(log, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log)


def _start_failed(data_dir: Path, exc: Exception) -> StorageError:
    """The one-line error for an engine that would not open the store, by what went wrong."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if any(word in text for word in _LOCKED):
        return StorageError(_in_use_message(data_dir))
    if any(word.lower() in text.lower() for word in _DAMAGED):
        return StorageError(_damaged(data_dir, text))
    return StorageError(
        f"could not start the embedded engine in {data_dir}/: {text}; "
        f"the engine's messages are in {data_dir / ENGINE_LOG}"
    )


async def _started_here(settings: Settings) -> EmbeddedMongo:
    """The embedded engine, started in this process (no server, no head start)."""
    _check_not_in_use(settings.data_dir)
    engine = EmbeddedMongo(settings.data_dir, durable=True)
    try:
        with _engine_output(settings):
            await engine.start()
    except LLMReqError:
        raise
    except Exception as exc:  # the engine's own errors (a locked or damaged store, ...)
        raise _start_failed(settings.data_dir, exc) from exc
    return engine


@contextlib.asynccontextmanager
async def store(settings: Settings, *, create: bool | None = None) -> AsyncIterator[Handle]:
    """Connect to the configured store.

    With no URI: the ``llmreq serve`` running on the data directory if there
    is one, else the embedded engine the ``llmreq`` launcher spawned for this
    data directory (``_head_start``), else the embedded engine started here.
    A store that does not exist is created only when ``create`` is true
    (default: when the running command is one of :data:`CREATING_COMMANDS`);
    otherwise a :class:`StorageError` says so, and nothing is written.
    """
    async with contextlib.AsyncExitStack() as stack:
        served = None if settings.uri else running_server(settings.data_dir)
        if settings.uri:
            uri = settings.uri
        elif served is not None:
            uri = served.uri
        else:
            if not has_store(settings.data_dir) and not (
                settings.command in CREATING_COMMANDS if create is None else create
            ):
                raise StorageError(NO_STORE)
            engine = await _head_started(settings.data_dir)
            if engine is None:
                engine = await _started_here(settings)
            stack.push_async_callback(engine.stop)
            uri = engine.uri
        client = _client(settings, uri)
        stack.push_async_callback(client.close)
        try:
            handle = await init(client, database=settings.database)
        except StorageError as exc:
            if settings.uri or served is not None or not _internal_error(exc):
                raise
            raise StorageError(_damaged(settings.data_dir, "its catalogue")) from exc
        yield handle


def interrupted_line(signum: int, elapsed: float, done: Callable[[], str] | None = None) -> str:
    """The one line a command stopped by a signal leaves on stderr."""
    verb = "interrupted" if signum == signal.SIGINT else "terminated"
    line = f"{verb} after {elapsed:.1f} s"
    if done is not None:
        with contextlib.suppress(Exception):  # the report must not fail the exit
            line += f": {done()}"
    return line


def run_main(
    settings: Settings,
    main: Callable[[], Awaitable[T]],
    *,
    done: Callable[[], str] | None = None,
    started: float | None = None,
) -> T:
    """Run a command's async ``main``; errors and signals end it in one line.

    Errors become one line on stderr and status 1. Ctrl-C (or SIGTERM) stops
    it within a few seconds with "interrupted after N s", counted from
    ``started`` (a ``time.monotonic()``; default: now), followed by what
    ``done()`` says was done, and status 130 (143 for SIGTERM).
    """
    if started is None:
        started = time.monotonic()
    since = started

    def last_words(signum: int) -> str:
        return interrupted_line(signum, time.monotonic() - since, done)

    with reported(settings):
        try:
            return interruptible(main, last_words=last_words)
        except Interrupted as stop:
            settings.err.print(last_words(stop.signum), markup=False)
            raise typer.Exit(status_of(stop.signum)) from None


def run(
    settings: Settings,
    work: Callable[[Handle], Awaitable[T]],
    *,
    done: Callable[[], str] | None = None,
    create: bool | None = None,
    started: float | None = None,
) -> T:
    """Run ``work`` against the store (see :func:`store` and :func:`run_main`).

    Args:
        settings: the global options.
        work: the command's work, given the open store.
        done: says, in a few words, how much was done, for the line printed
            when the command is interrupted ("120 of 500 requests recorded").
        create: whether a missing embedded store may be created (default:
            for :data:`CREATING_COMMANDS` only).
        started: when the command started (``time.monotonic()``), for that
            line's elapsed time, if its work began before this call (reading
            the file to import, say); default: now.
    """

    async def go() -> T:
        async with store(settings, create=create) as handle:
            return await work(handle)

    return run_main(settings, go, done=done, started=started)


def main() -> None:
    """The console script's entry point; it ends the process (``SystemExit``).

    Ctrl-C anywhere outside a command's work (while it starts, at a prompt)
    also ends with one line and status 130, not Click's "Aborted!" and 1.
    """
    started = install()
    set_last_words(lambda signum: interrupted_line(signum, time.monotonic() - started))
    try:
        app(prog_name="llmreq")
    except Interrupted as stop:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        print(interrupted_line(stop.signum, time.monotonic() - started), file=sys.stderr)
        sys.exit(status_of(stop.signum))
    finally:
        # The process ends here. Its last garbage collections, while the
        # interpreter shuts down, walk every object the imports made (the ODM's
        # models and validators, typing's caches): about 0.2 s, a fifth of a
        # short command. Frozen objects are left out of those walks. Nothing
        # else of the shutdown changes: exit handlers run, and every stream
        # and file is flushed and closed as before; only cyclic garbage left
        # at exit is not collected, and the process's memory goes back to the
        # system with it.
        gc.freeze()
