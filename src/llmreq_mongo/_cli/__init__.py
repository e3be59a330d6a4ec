"""The ``llmreq`` command line (Typer with Rich)."""

from __future__ import annotations

from ._app import app, main

__all__ = ["app", "main"]
