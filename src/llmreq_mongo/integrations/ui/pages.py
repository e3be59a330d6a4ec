"""``history_ui``: the read-only history browser, as a FastAPI router of HTML pages.

Every page is rendered on the server from Jinja2 templates with autoescape
on, so every recorded value reaches the browser as text. Every response
carries a strict Content-Security-Policy (``default-src 'self'``, no inline
script or style), ``nosniff`` and ``no-referrer``; every page also carries
``Cache-Control: no-store``, since it shows recorded payloads that no
browser or proxy cache should keep (the static files stay cacheable). Only GET and HEAD are
routed; anything else is refused with 405. Query parameters are read by name
and checked against fixed choices or lengths: nothing from the URL becomes a
query, filter or sort of its own.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from importlib import resources
from typing import Any, TypeVar

from bson import ObjectId
from fastapi import APIRouter, Request, Response, params
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from llmreq_mongo._checks import check_session_key, key_fits_a_path
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._reports.shown import BIDI_CONTROLS, code_point, written_out
from llmreq_mongo.errors import InvalidInput, StorageError
from llmreq_mongo.integrations.ui import reading
from llmreq_mongo.integrations.ui.views import (
    DASH,
    call_figures,
    count_text,
    millis_text,
    payload_model,
    response_payload,
)

__all__ = ["SECURITY_HEADERS", "build_router", "http_error_handler"]

#: The headers every page and file of the browser is sent with.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: What a page is sent with unless it says otherwise: it shows recorded payloads.
_NO_STORE = ("Cache-Control", "no-store")
_STATIC_TYPES = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_SESSIONS_PER_PAGE = 50
_CALLS_PER_PAGE = 500
_MAX_PARAM = 8192
_instances = itertools.count(1)

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]
F = TypeVar("F", bound=Callable[..., Any])


class _PageRoute(APIRoute):
    """A route whose every response carries :data:`SECURITY_HEADERS`."""

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            response.headers.setdefault(*_NO_STORE)
            return response

        return route

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The pages are read-only: any other method gets a plain 405 carrying
        # the same headers, instead of the app's JSON error.
        if self.methods and scope["method"] not in self.methods:
            response = PlainTextResponse(
                "Method Not Allowed: these pages are read-only (GET and HEAD only)",
                status_code=405,
                headers={"Allow": "GET, HEAD", **SECURITY_HEADERS, _NO_STORE[0]: _NO_STORE[1]},
            )
            await response(scope, receive, send)
            return
        await super().handle(scope, receive, send)


class _Refused(Exception):
    """A request the page answers with an error page (400 or 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("llmreq_mongo.integrations.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_visible,
    )
    env.filters["when"] = _when
    env.filters["count"] = lambda n: f"{n:,}"
    env.filters["pretty"] = _pretty
    env.filters["key"] = _key
    env.globals["DASH"] = DASH
    env.globals["counts"] = count_text
    env.globals["millis"] = millis_text
    return env


#: The bidirectional controls, which reorder the text around them.
_BIDI_CONTROLS = re.compile(f"[{BIDI_CONTROLS}]")


def _visible(value: Any) -> Any:
    """A recorded value as a page shows it: its bidirectional controls written out.

    A session key, a client name or a payload is whatever a caller sent: the
    key ``invoice``, U+202E, ``gnp.exe`` would show as ``invoiceexe.png``. A
    page must show what was recorded, so each control is written out as
    ``[U+202E]``. Every ``{{ ... }}`` of the templates goes through here
    (markup a template builds itself is left as it is).
    """
    if type(value) is str and _BIDI_CONTROLS.search(value):
        return _BIDI_CONTROLS.sub(code_point, value)
    return value


def _key(value: Any) -> Any:
    """A session key as a page names it: its control characters written out (``[U+000A]``).

    In a heading or a table cell a newline or a tab shows as a space, so the
    keys ``two\\nlines`` and ``two lines`` would look the same; a key is an
    identifier, and each must be told from the other. Text a model wrote is
    shown with its newlines: this is for keys only.
    """
    return written_out(value) if type(value) is str else value


def _pretty(value: Any) -> str:
    """``value`` as indented JSON; a bidirectional control as its JSON escape (``\\u202e``).

    The text is then both shown as it was recorded and, copied, the same JSON.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return _BIDI_CONTROLS.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return DASH
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _param(request: Request, name: str, *, choices: Sequence[str] = (), default: str = "") -> str:
    """A query parameter by name, checked; only one occurrence is accepted."""
    values = request.query_params.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        raise _Refused(400, f"the parameter {name!r} was given {len(values)} times; give it once")
    value = values[0]
    if len(value) > _MAX_PARAM:
        raise _Refused(400, f"the parameter {name!r} is too long")
    if choices and value not in choices:
        raise _Refused(400, f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


class _Links:
    """Every link a page draws, relative to where the router is mounted."""

    def __init__(self, mount: str) -> None:
        # The mount point is known in its decoded form: encode it back for links.
        self._base = urllib.parse.quote(mount.rstrip("/"), safe="/")

    @classmethod
    def of(cls, request: Request, names: Mapping[str, str]) -> _Links:
        """The links of a page the router named ``names`` serves."""
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return cls(root + str(request.app.url_path_for(names["overview"])))

    def page(self, path: str = "", **query: str | None) -> str:
        kept = {k: v for k, v in query.items() if v}
        return self._base + "/" + path + ("?" + urllib.parse.urlencode(kept) if kept else "")

    def static(self, name: str) -> str:
        return self.page("static/" + name)

    def session(self, key: str, client: str | None = None, **query: str | None) -> str:
        """A session's page; with ``client``, that client's calls only.

        Two clients may use the same key: each is a session of its own, and
        the listing links each row to its own client's calls.
        """
        if not key_fits_a_path(key):
            return self.page("session", key=key, client=client, **query)
        # Every character but letters, digits and "_.-~" is escaped, "/" and "%"
        # included, so any other key travels as one path segment and decodes to itself.
        return self.page("sessions/" + urllib.parse.quote(key, safe=""), client=client, **query)

    def call(self, record_id: Any) -> str:
        return self.page(f"requests/{record_id}")


async def _client_named(name: str) -> LLMClient | None:
    """The client a ``client`` parameter names (None when empty); 404 when there is none."""
    if not name:
        return None
    client = await reading.find_client(name)
    if client is None:
        raise _Refused(404, f"there is no LLM client named {name!r}")
    return client


def http_error_handler(title: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    """An app's handler for the errors no page answers (a path outside them, say: 404).

    FastAPI answers those with bare JSON and none of :data:`SECURITY_HEADERS`;
    an app that serves only the browser at its root (``llmreq ui``) answers
    them with the browser's own error page instead, its links from the root.
    """
    env = _environment()

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        message = "there is no page here" if status == 404 else str(exc.detail)
        links = _Links(str(request.scope.get("root_path", "")))
        html = env.get_template("error.html").render(
            title=title, links=links, status=status, message=message
        )
        headers = {**(exc.headers or {}), **SECURITY_HEADERS, _NO_STORE[0]: _NO_STORE[1]}
        return Response(html, status, headers, media_type="text/html; charset=utf-8")

    return handle


def build_router(*, dependencies: Sequence[params.Depends], title: str) -> APIRouter:
    """The router :func:`~llmreq_mongo.integrations.fastapi.history_ui` returns (checked there)."""
    env = _environment()
    files = {
        name: (resources.files("llmreq_mongo.integrations.ui") / "static" / name).read_bytes()
        for name in _STATIC_TYPES
    }
    ns = f"llmreq_ui{next(_instances)}"
    pages = ("overview", "sessions", "session", "session_by_key", "call", "static")
    names = {p: f"{ns}.{p}" for p in pages}
    router = APIRouter(dependencies=list(dependencies), route_class=_PageRoute)

    def render(request: Request, template: str, code: int = 200, **context: Any) -> Response:
        links = _Links.of(request, names)
        html = env.get_template(template).render(title=title, links=links, **context)
        return Response(html, status_code=code, media_type="text/html; charset=utf-8")

    async def guarded(request: Request, page: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await page()
        except _Refused as exc:
            return render(request, "error.html", exc.status, status=exc.status, message=exc.message)
        except StorageError:
            message = "the request history is unavailable; try again later"
            return render(request, "error.html", 503, status=503, message=message)
        except InvalidInput as exc:
            return render(request, "error.html", 400, status=400, message=str(exc))

    def get(path: str, name: str) -> Callable[[F], F]:
        return router.api_route(
            path, methods=["GET", "HEAD"], name=names[name], include_in_schema=False
        )

    @get("/", "overview")
    async def overview_page(request: Request) -> Response:
        async def page() -> Response:
            window = _param(request, "window", choices=tuple(reading.WINDOWS), default="7d")
            data = await reading.overview(window)
            return render(request, "overview.html", window=window, data=data)

        return await guarded(request, page)

    @get("/sessions", "sessions")
    async def sessions_page(request: Request) -> Response:
        async def page() -> Response:
            window = _param(request, "window", choices=(*reading.WINDOWS, "all"), default="7d")
            client_name = _param(request, "client")
            prefix = _param(request, "prefix")
            after = _param(request, "after") or None
            client = await _client_named(client_name)
            found = await reading.sessions(
                client=client,
                window=window,
                prefix=check_session_key(prefix, nullable=False) or None,
                size=_SESSIONS_PER_PAGE,
                after=after,
            )
            return render(
                request,
                "sessions.html",
                page=found,
                names=await reading.client_names(row.summary.llm_client_id for row in found.items),
                filters={"window": window, "client": client_name, "prefix": prefix},
                first_page=after is None,
            )

        return await guarded(request, page)

    @get("/sessions/{session_key:path}", "session")
    async def session_page(request: Request, session_key: str) -> Response:
        return await conversation(request, lambda: session_key)

    @get("/session", "session_by_key")
    async def session_by_key_page(request: Request) -> Response:
        """A session whose key no path segment carries (``.``, ``..``, a newline): ``?key=``."""

        def key() -> str:
            found = _param(request, "key")
            if not found:
                raise _Refused(400, "the parameter 'key' is required: the session key to show")
            return found

        return await conversation(request, key)

    async def conversation(request: Request, session_key: Callable[[], str]) -> Response:
        """One session's page; ``session_key`` reads the key (a refusal is the page's)."""

        async def page() -> Response:
            key = check_session_key(session_key(), nullable=False)
            client_name = _param(request, "client")
            after = _param(request, "after") or None
            client = await _client_named(client_name)
            calls, next_cursor, before = await reading.session_calls(
                key, client=client, size=_CALLS_PER_PAGE, after=after
            )
            if not calls and after is None:
                of = f" of the client {client_name!r}" if client_name else ""
                raise _Refused(404, f"there is no session {key!r}{of}")
            return render(
                request,
                "session.html",
                session_key=key,
                client_name=client_name or None,
                calls=calls,
                next_cursor=next_cursor,
                continued=after is not None,
                before=before,
                names=await reading.client_names(call.record.llm_client_id for call in calls),
            )

        return await guarded(request, page)

    @get("/requests/{record_id}", "call")
    async def call_page(request: Request, record_id: str) -> Response:
        async def page() -> Response:
            if not ObjectId.is_valid(record_id) or len(record_id) != 24:
                raise _Refused(400, f"{record_id!r} is not a request id (24 hex digits)")
            record = await LLMClientRequest.objects.filter(id=ObjectId(record_id)).first()
            if record is None:
                raise _Refused(404, f"there is no request {record_id}")
            names = await reading.client_names([record.llm_client_id])
            return render(
                request,
                "request.html",
                record=record,
                client_name=names.get(ObjectId(record.llm_client_id), DASH),
                figures=call_figures(record),
                asked=payload_model(record.request),
                r=record.response,
                response=response_payload(record),
                fields=record.to_json(),
            )

        return await guarded(request, page)

    @get("/static/{name}", "static")
    async def static_file(name: str) -> Response:
        if name not in files:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            files[name],
            media_type=_STATIC_TYPES[name],
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return router
