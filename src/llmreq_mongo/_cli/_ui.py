"""``llmreq ui``: serve the history browser on this machine.

The pages have no login of their own, so the server binds to the loopback
address unless told otherwise, and binding anywhere else needs
``--allow-remote``. Binding loopback is not enough on its own: a web page the
user visits can point a name it owns at 127.0.0.1 (DNS rebinding) and read
the answers as its own origin's. So the server answers only requests whose
``Host`` names the address it serves (see :func:`allowed_hosts`). It reads
the store the global options name (``--uri``, ``--database``, else the
embedded store in ``./.llmreq-data``), prints its URL, and stops cleanly on
Ctrl-C (the store is closed, status 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
import webbrowser
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmreq_mongo._cli._app import Settings, app, run, settings_of
from llmreq_mongo._connection import Handle
from llmreq_mongo.errors import ExtraMissing

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["allowed_hosts", "is_loopback", "serving_app", "ui"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
#: The names a browser on this machine reaches a loopback server by.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_TITLE = "LLM request history"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (a loopback address or ``localhost``)."""
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str]:
    """The ``Host`` names the server answers when it listens on ``host`` (port not included).

    The loopback names always (``127.0.0.1``, ``localhost``, ``[::1]``), and
    ``host`` itself when it is another one (an IPv6 address in brackets, as a
    ``Host`` header writes it). Any other name is refused with 400, which is
    what defeats DNS rebinding: the attacker's page sends its own name. An
    address that stands for every interface (``0.0.0.0``, ``::``, only with
    ``--allow-remote``) is reached by names this machine cannot know, so
    then every name is answered (``["*"]``).
    """
    bare = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        named = bare
    else:
        if address.is_unspecified:
            return ["*"]
        named = f"[{address.compressed}]" if address.version == 6 else address.compressed
    names = list(_LOOPBACK_HOSTS)
    if named not in names and named != "::1":
        names.append(named)
    return names


class _Headed:
    """ASGI wrapper: every response carries the browser's security headers.

    The pages set them themselves; this covers what answers before or
    outside them (a refused ``Host``), as the documentation promises.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.datastructures import MutableHeaders

        from llmreq_mongo.integrations.ui import SECURITY_HEADERS

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in {**SECURITY_HEADERS, "Cache-Control": "no-store"}.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, headed if scope["type"] == "http" else send)


def serving_app(host: str) -> FastAPI:
    """The app ``llmreq ui`` serves on ``host``: the browser at ``/``, guarded by ``Host``.

    Starlette's own ``TrustedHostMiddleware`` checks the ``Host`` against
    :func:`allowed_hosts`; a path outside the pages gets the browser's HTML
    404 page instead of FastAPI's bare JSON.
    """
    from fastapi import FastAPI
    from starlette.exceptions import HTTPException
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from llmreq_mongo.integrations.fastapi import history_ui
    from llmreq_mongo.integrations.ui import http_error_handler

    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    web.include_router(history_ui(public=True, title=_TITLE))
    web.add_exception_handler(HTTPException, http_error_handler(_TITLE))
    web.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host))
    web.add_middleware(_Headed)  # outermost: it also heads the Host refusals
    return web


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

        import llmreq_mongo.integrations.ui  # noqa: F401 (the extra's other half)
    except ImportError as exc:
        err = ExtraMissing("ui", feature="llmreq ui")
        settings.err.print(f"error: {err}", markup=False)
        raise typer.Exit(1) from exc

    def serve_pages(sock: socket.socket) -> None:
        async def work(handle: Handle) -> None:
            web = serving_app(host)
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
