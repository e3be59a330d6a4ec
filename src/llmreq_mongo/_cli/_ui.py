"""``llmreq ui``: serve the history browser on this machine.

The pages have no login of their own, so the server binds to the loopback
address unless told otherwise, and binding anywhere else needs
``--allow-remote``. It reads the store the global options name (``--uri``,
``--database``, else the embedded store in ``./.llmreq-data``), prints its
URL, and stops cleanly on Ctrl-C (the store is closed, status 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import webbrowser
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from llmreq_mongo._cli._app import Settings, app, run, settings_of
from llmreq_mongo._connection import Handle
from llmreq_mongo.errors import ExtraMissing

__all__ = ["is_loopback", "ui"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (a loopback address or ``localhost``)."""
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a port in use fails before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/"


@app.command()
def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow an address other than loopback (the pages have no login).",
        ),
    ] = False,
) -> None:
    """Serve the read-only history browser (clients, sessions, calls) until Ctrl-C."""
    settings = settings_of(ctx)
    if not is_loopback(host) and not allow_remote:
        settings.err.print(
            f"error: refusing to serve on {host}: the history browser has no login, so "
            "anyone who can reach that address could read every recorded request. Use "
            "the default --host 127.0.0.1, or pass --allow-remote if that is what you mean.",
            markup=False,
        )
        raise typer.Exit(2)
    try:
        import uvicorn
        from fastapi import FastAPI

        from llmreq_mongo.integrations.fastapi import history_ui
    except ImportError as exc:
        err = ExtraMissing("ui", feature="llmreq ui")
        settings.err.print(f"error: {err}", markup=False)
        raise typer.Exit(1) from exc

    def serve_pages(sock: socket.socket) -> None:
        async def work(handle: Handle) -> None:
            web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
            web.include_router(history_ui(public=True))
            config = uvicorn.Config(web, log_level="warning", lifespan="off", access_log=False)
            server = _quiet_server(config)
            url = _url(sock, host)
            settings.err.print(f"serving the request history at {url} (Ctrl-C stops)")
            typer.echo(url)
            opener = asyncio.create_task(_open_when_started(server, url)) if open_browser else None
            try:
                await server.serve(sockets=[sock])
            finally:
                if opener is not None:
                    opener.cancel()
            settings.err.print("stopped")

        run(settings, work)

    with _reported_bind(settings, host, port) as sock:
        serve_pages(sock)


@contextlib.contextmanager
def _reported_bind(settings: Settings, host: str, port: int) -> Iterator[socket.socket]:
    try:
        sock = _bind(host, port)
    except OSError as exc:
        settings.err.print(
            f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "pick another --port (0 picks a free one)",
            markup=False,
        )
        raise typer.Exit(1) from None
    with sock:
        yield sock


async def _open_when_started(server: Any, url: str) -> None:
    await server.ready.wait()
    # The browser launcher may wait on a subprocess: keep it off the event loop.
    await asyncio.to_thread(webbrowser.open, url)


def _quiet_server(config: Any) -> Any:
    """A uvicorn server for ``config`` that stops on Ctrl-C or SIGTERM without re-raising it.

    uvicorn re-sends a captured signal after its graceful shutdown, which
    would interrupt the store's own clean close; this one only stops. The
    class is made here, when ``llmreq ui`` runs, so that the other commands
    never import uvicorn (a tenth of a second of every start).
    """
    import uvicorn

    class QuietServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.ready = asyncio.Event()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            self.ready.set()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return QuietServer(config)
