"""FastAPI integration: a lifespan that connects and runs a recorder, dependencies, a router.

Needs the ``fastapi`` extra (``pip install "llmreq-mongo[fastapi]"``).

Example::

    from fastapi import Depends, FastAPI
    from llmreq_mongo.integrations.asgi import LLMRequestLogger
    from llmreq_mongo.integrations.fastapi import LLMReqLifespan, history_router

    llmreq = LLMReqLifespan(llm_client="support-bot")  # init() + a Recorder, with the app
    app = FastAPI(lifespan=llmreq)
    app.add_middleware(
        LLMRequestLogger,
        recorder=llmreq.current_recorder,
        llm_client=llmreq.current_client,
        paths=["/v1/chat/completions"],
    )
    app.include_router(history_router(dependencies=[Depends(require_api_key)]), prefix="/llmreq")
    app.include_router(history_ui(dependencies=[Depends(require_api_key)]), prefix="/history")

Routes that record by hand take the recorder, the client and the session key as
dependencies (:func:`get_recorder`, :func:`get_llm_client`, :func:`get_session_key`).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from beanie import Document
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from llmreq_mongo.errors import ExtraMissing

try:
    from fastapi import APIRouter, Request, params
except ImportError as exc:
    raise ExtraMissing("fastapi", feature="llmreq_mongo.integrations.fastapi") from exc

from llmreq_mongo._checks import a_type
from llmreq_mongo._connection import (
    DEFAULT_TIMEOUT,
    ENV_URI,
    Handle,
    check_database_name,
    check_document_models,
    check_target,
    check_timeout,
    init,
)
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._recording.options import check_options
from llmreq_mongo._recording.recorder import Recorder
from llmreq_mongo.errors import InvalidInput, LifespanError, RecorderClosed

from ._history import history_router as history_router
from ._protection import checked_dependencies
from ._session_keys import (
    DEFAULT_SESSION_KEY_SOURCES,
    NO_BODY,
    SessionKeyFinder,
    parse_json_body,
)

__all__ = [
    "AppLifespan",
    "LLMReqLifespan",
    "get_llm_client",
    "get_recorder",
    "get_session_key",
    "history_router",
    "history_ui",
    "session_key_dependency",
]

#: An application's own lifespan: called with the app, returns an async context manager.
AppLifespan: TypeAlias = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]

_STATE_ATTRIBUTE = "llmreq"
_MAX_BODY_FOR_KEY = 1024 * 1024


# -- recorder options, checked when the lifespan is built ----------------------------------


def _check_recorder_options(options: object) -> dict[str, Any]:
    """``options`` as a dict, if each is a ``Recorder`` option with a valid value.

    The Recorder's own option checks run on them (the defaults filling the
    rest), so the lifespan refuses exactly what the Recorder would, at once
    and without building one.

    Raises:
        InvalidInput: not a mapping of names to values, an unknown name (the
            message lists the known ones), or a value the Recorder would refuse.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidInput(
            "recorder_options takes a mapping of Recorder options, such as "
            f'{{"spill_path": "/var/lib/app/llmreq.spill"}}, got {a_type(options)}'
        )
    defaults = {
        p.name: p.default
        for p in inspect.signature(Recorder).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    for name in options:
        if name not in defaults:
            raise InvalidInput(
                f"recorder_options has {name!r}, which is not a Recorder option; "
                f"the options are {', '.join(defaults)}"
            )
    for name, value in options.items():
        try:
            check_options(**{**defaults, name: value})
        except InvalidInput as exc:
            # "max_batch must be ..." -> "recorder_options['max_batch'] must be ..."
            why = str(exc).removeprefix(name).lstrip()
            raise InvalidInput(f"recorder_options[{name!r}] {why}") from None
    try:  # rules across options (spill="always" needs a spill_path)
        check_options(**{**defaults, **options})
    except InvalidInput as exc:
        raise InvalidInput(f"recorder_options: {exc}") from None
    return dict(options)


class LLMReqLifespan:
    """A FastAPI (or Starlette) lifespan that runs llmreq-mongo with the application.

    On start-up it runs :func:`llmreq_mongo.init`, creates the LLM client named
    ``llm_client`` if it does not exist, and starts a new
    :class:`~llmreq_mongo.Recorder`; on shutdown it stops the recorder (which
    writes, or spills, what is queued) and closes the connection. The app's own
    lifespan, if given, runs inside it: the recorder is running for the whole of
    it, and its state (a mapping it yields) reaches the requests as usual.

    Pass the instance as ``FastAPI(lifespan=...)``. While it runs, the app's
    ``app.state.llmreq`` is this object, which the dependencies read.

    Args:
        app_lifespan: the application's own lifespan, to run inside this one.
        target: a MongoDB URI, ``AsyncMongoClient`` or ``AsyncDatabase``; None
            reads ``LLMREQ_MONGODB_URI``.
        database: the database, when ``target`` is a URI or a client.
        llm_client: the name of the LLM client the app records against (created
            on start-up if missing); None when the app records against clients
            of its own.
        embedded: with no ``target`` and no ``LLMREQ_MONGODB_URI``, start the
            embedded engine instead (``True`` for a temporary store, or a
            directory to keep the data in); needs the ``embedded`` extra. For
            development and demos only.
        recorder_options: keyword options for the :class:`~llmreq_mongo.Recorder`
            (``spill_path``, ``max_queue``, ...); checked here.
        document_models: your own documents, passed on to ``init``.
        timeout: seconds MongoDB has to answer at start-up (``init``'s
            ``timeout``, 10 by default); past it the app fails to start with
            a one-line :class:`~llmreq_mongo.errors.ServerUnreachable`.

    Raises:
        InvalidInput: an option is invalid (checked here, not at start-up; a
            malformed URI is refused by ``init`` at start-up).
        UnsupportedClient: ``target`` is a Motor object or of an unknown type.
    """

    def __init__(
        self,
        app_lifespan: AppLifespan | None = None,
        /,
        *,
        target: str | AsyncMongoClient[Any] | AsyncDatabase[Any] | None = None,
        database: str = "llmreq",
        llm_client: str | None = None,
        embedded: bool | str | os.PathLike[str] = False,
        recorder_options: Mapping[str, Any] | None = None,
        document_models: Sequence[type[Document]] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if app_lifespan is not None and not callable(app_lifespan):
            raise InvalidInput(
                "app_lifespan must be the app's lifespan function (app -> async context "
                f"manager), got {a_type(app_lifespan)}"
            )
        if llm_client is not None and (
            not isinstance(llm_client, str) or not 1 <= len(llm_client) <= 255
        ):
            raise InvalidInput(
                f"llm_client must be a client name of 1 to 255 characters, got {llm_client!r}"
            )
        if not isinstance(embedded, (bool, str, os.PathLike)):
            raise InvalidInput(f"embedded must be True, False or a directory, got {embedded!r}")
        check_target(target)
        self._app_lifespan = app_lifespan
        self._target = target
        self._database = check_database_name(database)
        self._client_name = llm_client
        self._embedded = embedded
        self._recorder_options = _check_recorder_options(recorder_options)
        self._document_models = check_document_models(document_models)
        self._timeout = check_timeout(timeout)
        self._recorder: Recorder | None = None
        self._llm_client: LLMClient | None = None
        self._handle: Handle | None = None

    def __call__(self, app: Any) -> contextlib.AbstractAsyncContextManager[Any]:
        """The lifespan context for ``app`` (FastAPI calls this at start-up)."""
        return self._run(app)

    @contextlib.asynccontextmanager
    async def _run(self, app: Any) -> AsyncIterator[Any]:
        if self._recorder is not None:
            raise LifespanError("this LLMReqLifespan is already running; an app runs one at a time")
        async with contextlib.AsyncExitStack() as stack:
            target = self._target
            if target is None and not os.environ.get(ENV_URI) and self._embedded is not False:
                from llmreq_mongo.embedded import EmbeddedMongo

                path = None if self._embedded is True else Path(self._embedded)
                engine = await stack.enter_async_context(EmbeddedMongo(path))
                target = engine.uri
            handle = await init(
                target,
                database=self._database,
                document_models=self._document_models,
                timeout=self._timeout,
            )
            stack.push_async_callback(handle.close)
            if self._client_name is not None:
                client, _ = await LLMClient.objects.get_or_create(name=self._client_name)
                self._llm_client = client
            recorder = await stack.enter_async_context(Recorder(**self._recorder_options))
            self._handle, self._recorder = handle, recorder
            stack.callback(self._forget)
            setattr(app.state, _STATE_ATTRIBUTE, self)
            state = None
            if self._app_lifespan is not None:
                state = await stack.enter_async_context(self._app_lifespan(app))
            yield state

    def _forget(self) -> None:
        self._handle = self._recorder = self._llm_client = None

    def current_recorder(self) -> Recorder | None:
        """The running recorder, or None outside the app's lifespan."""
        return self._recorder

    def current_client(self) -> LLMClient | None:
        """The app's LLM client, or None outside the app's lifespan (or without one)."""
        return self._llm_client

    @property
    def handle(self) -> Handle | None:
        """What ``init`` connected to, or None outside the app's lifespan."""
        return self._handle

    @property
    def recorder(self) -> Recorder:
        """The running recorder.

        Raises:
            RecorderClosed: the app is not running.
        """
        if self._recorder is None:
            raise RecorderClosed(
                "the app's LLMReqLifespan is not running, so there is no recorder yet"
            )
        return self._recorder

    @property
    def llm_client(self) -> LLMClient:
        """The app's LLM client.

        Raises:
            LifespanError: the app is not running, or no ``llm_client`` was named.
        """
        if self._llm_client is None:
            why = "is not running" if self._recorder is None else "was given no llm_client name"
            raise LifespanError(f"there is no LLM client: the app's LLMReqLifespan {why}")
        return self._llm_client


def _integration(request: Request) -> LLMReqLifespan:
    found = getattr(request.app.state, _STATE_ATTRIBUTE, None)
    if not isinstance(found, LLMReqLifespan):
        raise RecorderClosed(
            "no LLMReqLifespan is running for this app: create the app with "
            "FastAPI(lifespan=LLMReqLifespan(...))"
        )
    return found


def get_recorder(request: Request) -> Recorder:
    """Dependency: the app's running :class:`~llmreq_mongo.Recorder`.

    Example::

        @app.post("/ask")
        async def ask(body: dict, recorder: Recorder = Depends(get_recorder)): ...
    """
    return _integration(request).recorder


def get_llm_client(request: Request) -> LLMClient:
    """Dependency: the LLM client named by the app's :class:`LLMReqLifespan`."""
    return _integration(request).llm_client


def session_key_dependency(
    session_key_from: Sequence[str] = DEFAULT_SESSION_KEY_SOURCES,
) -> Callable[[Request], Awaitable[str | None]]:
    """Make a dependency that finds the request's session key in the places given.

    The places and the rules are those of
    :class:`~llmreq_mongo.integrations.asgi.SessionKeyFinder`: the first usable
    string wins, anything else is ignored.

    Raises:
        InvalidInput: a place is malformed.
    """
    finder = SessionKeyFinder(session_key_from)

    async def session_key(request: Request) -> str | None:
        body: Any = NO_BODY
        if finder.needs_body and request.method not in ("GET", "HEAD", "OPTIONS"):
            raw = await request.body()
            if len(raw) <= _MAX_BODY_FOR_KEY:
                with contextlib.suppress(ValueError):
                    body = parse_json_body(raw)
        key, _ = finder.find(request.scope, body)
        return key

    return session_key


#: Dependency: the session key of the request, from the header ``x-session-key``, the cookie
#: ``session_key``, the JSON body's ``session_key`` or the query's ``session_key``, in that
#: order (None when there is none).
get_session_key = session_key_dependency()


def history_ui(
    *,
    dependencies: Sequence[params.Depends] = (),
    public: bool = False,
    title: str = "LLM request history",
) -> APIRouter:
    """The history browser: read-only HTML pages of clients, sessions and calls.

    Mount it under any prefix; every link it draws is relative to where it is
    mounted. Pages: ``/`` (clients over a window, with a chart of calls),
    ``/sessions`` (latest first; filters for client, window, key prefix),
    ``/sessions/{session_key}`` (the conversation) and ``/requests/{id}``
    (one call). Unknown sessions and ids answer a 404 page, a malformed id or
    cursor a 400 page. Only GET and HEAD are routed, and every response
    carries a strict Content-Security-Policy.

    The pages show every recorded payload, as ``history_router`` does, so the
    same rule applies: protect them with ``dependencies``, or say
    ``public=True`` to mount them without protection on purpose. The route
    names are unique to each router, so one app can mount several.

    Needs the ``ui`` extra (``pip install "llmreq-mongo[ui]"``).

    Example::

        app.include_router(
            history_ui(dependencies=[Depends(require_api_key)]), prefix="/history"
        )

    Raises:
        InvalidInput: neither ``dependencies`` nor ``public=True`` was given,
            or both were; or ``title`` is not a short text.
        ExtraMissing: the ``ui`` extra (Jinja2) is not installed.
    """
    from llmreq_mongo.integrations.ui import build_router

    deps = checked_dependencies(dependencies, public, what="history_ui()")
    if not isinstance(title, str) or not 1 <= len(title) <= 200:
        raise InvalidInput(f"title must be a text of 1 to 200 characters, got {title!r}")
    return build_router(dependencies=deps, title=title)
