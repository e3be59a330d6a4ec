"""The ``llmreq`` command line (Typer with Rich).

Importing the package registers every command on :data:`app`.
"""

from __future__ import annotations

import importlib

from ._app import app, main

__all__ = ["app", "main"]

# Each module registers its commands when imported, and ``llmreq --help``
# lists them in this order.
for _module in (
    "_demo",
    "_inspect",
    "_stats",
    "_latency",
    "_export",
    "_import",
    "_retention",
    "_aggregate",
    "_follow",
    "_shard",
    "_serve",
):
    importlib.import_module(f"{__name__}.{_module}")
del _module
importlib.import_module(f"{__name__}._ui")
