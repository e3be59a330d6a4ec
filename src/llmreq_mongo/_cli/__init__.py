"""The ``llmreq`` command line (Typer with Rich).

``from llmreq_mongo._cli import app`` gives the application with every command
registered on it. :func:`main`, which the console script runs, registers only
the command it is about to run when the arguments name one (about a tenth of
a second less to import and build), and every command otherwise (``llmreq
--help``, a misspelt command).
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import TYPE_CHECKING

from llmreq_mongo._head_start import command_of

if TYPE_CHECKING:
    from ._app import app as app

__all__ = ["COMMANDS", "app", "main", "register"]

#: The module that registers each command, in the order ``llmreq --help`` lists them.
COMMANDS = {
    "demo": "_demo",
    "clients": "_inspect",
    "sessions": "_inspect",
    "show": "_inspect",
    "stats": "_stats",
    "latency": "_latency",
    "export": "_export",
    "import": "_import",
    "prune": "_retention",
    "retention": "_retention",
    "aggregate": "_aggregate",
    "tail": "_follow",
    "shard": "_shard",
    "serve": "_serve",
    "ui": "_ui",
}


def register(command: str | None = None) -> None:
    """Register ``command`` (its module's commands), or every command when None."""
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")


def main() -> None:
    """The console script's entry point; it ends the process (``SystemExit``).

    The imports run with the garbage collector off. They create several
    hundred thousand objects, nearly none of them garbage, and the collector
    would walk them over a hundred times (a quarter of a second of a short
    command). Once they are done, what they made is frozen (left out of
    every later collection: it lives as long as the process anyway) and the
    collector runs as usual for the command itself; only cyclic garbage the
    imports left is never collected.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        from ._app import main as run

        found = command_of(sys.argv[1:])
        register(found[0] if found is not None else None)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    run()


if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """``app``, with every command registered on it."""
        if name != "app":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from ._app import app

        register()
        globals()["app"] = app
        return app
