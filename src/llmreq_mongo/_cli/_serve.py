"""``llmreq serve``: the embedded store as a long-lived server on 127.0.0.1.

A one-shot command opens the embedded store for a few seconds, so the
engine's TTL sweeper (which first runs one sweep interval after the start)
never gets to expire anything, and two commands cannot share the store. A
served store has neither problem: TTL retention runs every ``--ttl-interval``
seconds, and every client connects through the printed URI. Commands given
the same data directory and no ``--uri`` find the server through the state
file it writes there (``_served``) and connect to it by themselves.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.errors import LLMReqError, StorageError

from ._app import _check_not_in_use, app, run_main, settings_of
from ._served import Served, remove_state, running_server, write_state

__all__ = ["serve"]

_DEFAULT_TTL_INTERVAL = 5.0


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="TCP port on 127.0.0.1 (0: any free port).")
    ] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            file_okay=False,
            help="The store's directory (default: the global --data-dir, ./.llmreq-data).",
            show_default=False,
        ),
    ] = None,
    ttl_interval: Annotated[
        float,
        typer.Option(min=0.1, max=3600, help="Seconds between TTL retention sweeps."),
    ] = _DEFAULT_TTL_INTERVAL,
) -> None:
    """Serve the embedded store on 127.0.0.1 until Ctrl-C or SIGTERM.

    Prints the URI on stdout. Other programs connect with --uri; llmreq
    commands on the same data directory find the server by themselves.
    """
    settings = settings_of(ctx)
    if settings.uri:
        raise typer.BadParameter(
            "serve runs the embedded store and takes no --uri (nor LLMREQ_MONGODB_URI)",
            ctx=ctx,
            param_hint="--uri",
        )
    where = data_dir if data_dir is not None else settings.data_dir

    async def main() -> None:
        already = running_server(where)
        if already is not None:
            raise StorageError(
                f"the store in {where}/ is already served at {already.uri} "
                f"(pid {already.pid}); connect to it with --uri"
            )
        _check_not_in_use(where)
        engine = EmbeddedMongo(where, durable=True, port=port, ttl_sweep_seconds=ttl_interval)
        try:
            await engine.start()
        except LLMReqError:
            raise
        except Exception as exc:  # the engine's own errors (the port is taken, ...)
            raise StorageError(f"could not serve the store in {where}/: {exc}") from exc
        served = Served(uri=engine.uri, port=engine.port, pid=os.getpid())
        try:
            write_state(where, served)
            settings.err.print(
                f"serving {where}/ at {served.uri} (TTL sweeps every {ttl_interval:g} s); "
                "Ctrl-C stops it",
                markup=False,
            )
            print(served.uri, flush=True)
            await asyncio.Event().wait()  # until a signal cancels this task
        finally:
            remove_state(where, pid=served.pid)
            await engine.stop()

    run_main(settings, main, done=lambda: f"stopped serving {where}/")
