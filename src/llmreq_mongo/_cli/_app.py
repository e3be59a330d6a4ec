"""The ``llmreq`` application: global options, the store, and error reporting.

Every command runs against the store the global options name: ``--uri`` (or
``LLMREQ_MONGODB_URI``), else the embedded engine with a persistent store in
``./.llmreq-data``, started with durable commits so nothing acknowledged is
lost on a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from .._connection import ENV_URI, Handle, init
from ..embedded import EmbeddedMongo
from ..errors import LLMReqError

__all__ = ["Settings", "app", "main", "run", "store"]

T = TypeVar("T")
DEFAULT_DATA_DIR = Path(".llmreq-data")

app = typer.Typer(
    name="llmreq",
    help="Inspect and manage the request history of LLM clients kept in MongoDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass(frozen=True)
class Settings:
    """The global options, shared by every command."""

    uri: str | None
    database: str
    json: bool
    debug: bool
    data_dir: Path = DEFAULT_DATA_DIR

    @property
    def console(self) -> Console:
        return Console(highlight=False, soft_wrap=True)


@app.callback()
def _global(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Option(
            envvar=ENV_URI,
            help="MongoDB URI. Default: the embedded engine, storing in ./.llmreq-data.",
            show_default=False,
        ),
    ] = None,
    database: Annotated[str, typer.Option(help="Database name.")] = "llmreq",
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    ctx.obj = Settings(uri=uri or None, database=database, json=json, debug=debug)


@contextlib.asynccontextmanager
async def store(settings: Settings) -> AsyncIterator[Handle]:
    """Connect to the configured store, starting the embedded engine when no URI is set."""
    if settings.uri:
        handle = await init(settings.uri, database=settings.database)
        try:
            yield handle
        finally:
            await handle.close()
        return
    async with EmbeddedMongo(settings.data_dir, durable=True) as engine:
        handle = await init(engine.uri, database=settings.database)
        try:
            yield handle
        finally:
            await handle.close()


def run(settings: Settings, work: Callable[[Handle], Awaitable[T]]) -> T:
    """Run ``work`` against the store; errors become one line on stderr and exit 1."""

    async def go() -> T:
        async with store(settings) as handle:
            return await work(handle)

    try:
        return asyncio.run(go())
    except (LLMReqError, OSError) as exc:
        if settings.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        Console(stderr=True, highlight=False).print(f"error: {message}", markup=False)
        raise typer.Exit(1) from None


def settings_of(ctx: typer.Context) -> Settings:
    """The global options of the running command."""
    obj: Any = ctx.obj
    if not isinstance(obj, Settings):  # a command invoked without the callback
        obj = Settings(uri=os.environ.get(ENV_URI), database="llmreq", json=False, debug=False)
    return obj


def main() -> None:
    """The console script's entry point."""
    from . import _demo  # noqa: F401  (registers the command)

    app(prog_name="llmreq")
    sys.exit(0)
