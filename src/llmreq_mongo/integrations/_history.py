"""``history_router``: a read-only JSON API over the request history, for FastAPI.

Each endpoint checks its parameters (FastAPI answers 422 for a malformed,
naive or out-of-range datetime, a size out of range; the library's own checks
answer 400 with the library's message, for a bad cursor among others) and
reads through the sessions and analytics layer, within a time limit: when
MongoDB does not answer in time the endpoint answers 503. Lists are paged
with keyset cursors: a page carries ``next_cursor``, passed back as ``after``
for the next page. Every time is written in UTC to the millisecond
(``2026-03-01T22:30:19.970Z``), as the command line writes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

import pymongo
from bson import ObjectId
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, params
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pymongo.errors import PyMongoError

from llmreq_mongo import analytics
from llmreq_mongo._checks import key_fits_a_path
from llmreq_mongo._connection import check_timeout
from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._reports.reading import client_names_of
from llmreq_mongo._reports.session_pages import session_page
from llmreq_mongo.errors import InvalidInput, StorageError, storage_errors

from ._history_responses import ResponseOut, TokenUsageOut, response_out
from ._instant import Instant
from ._protection import checked_dependencies

__all__ = [
    "ClientOut",
    "ClientPage",
    "ClientUsageOut",
    "ErrorOut",
    "RequestOut",
    "RequestPage",
    "ResponseOut",
    "SessionOut",
    "SessionPage",
    "TokenUsageOut",
    "UsageBucketOut",
    "UsageOut",
    "history_router",
]

_MAX_PAGE = 200
_DEFAULT_PAGE = 50
#: Seconds an endpoint gives MongoDB before it answers 503.
DEFAULT_TIMEOUT = 5.0


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    """An error: what was wrong and what to do."""

    detail: str


class ClientOut(_Out):
    """An LLM client."""

    id: str
    name: str
    description: str
    created_at: Instant
    updated_at: Instant


class ClientPage(_Out):
    """A page of clients, by name."""

    items: list[ClientOut]
    next_cursor: str | None = Field(description="pass it as `after` for the next page")


class SessionOut(_Out):
    """One session of one client."""

    session_key: str
    llm_client_id: str
    requests: int = Field(description="raw requests in the window (rollups excluded)")
    first_at: Instant
    last_at: Instant
    requests_url: str = Field(
        description="the path of this session's requests (the key percent-encoded, "
        "the client given by name)"
    )


class SessionPage(_Out):
    """A page of sessions, most recently active first."""

    items: list[SessionOut]
    next_cursor: str | None = Field(description="pass it as `after` for the next page")


class RequestOut(_Out):
    """One recorded request."""

    id: str
    llm_client_id: str
    session_key: str | None
    is_aggregation: bool
    request: Any = Field(description="the JSON payload, as recorded")
    response: ResponseOut | None = Field(
        description="what came back: null for a request recorded alone"
    )
    created_at: Instant


class RequestPage(_Out):
    """A page of a session's requests, in order."""

    items: list[RequestOut]
    next_cursor: str | None = Field(description="pass it as `after` for the next page")


class UsageBucketOut(_Out):
    """The number of requests in one day or hour."""

    start: Instant = Field(
        description="the bucket's first instant (local midnight or the hour, in `tz`), in UTC"
    )
    count: int


class UsageOut(_Out):
    """Requests per day or hour, empty buckets included."""

    by: Literal["day", "hour"]
    tz: str
    buckets: list[UsageBucketOut]


class ClientUsageOut(_Out):
    """What one client handled."""

    llm_client_id: str
    name: str | None
    requests: int
    sessions: int
    first_at: Instant
    last_at: Instant


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a parameter was refused (a bad cursor, say)"},
    404: {"model": ErrorOut, "description": "no such client"},
    503: {"model": ErrorOut, "description": "MongoDB could not be reached, or not in time"},
}


def _in_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` in UTC; an instant outside the calendar once in UTC is refused (422)."""
    if value is None:
        return None
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} falls outside the years 1 to 9999 once converted to UTC"
        ) from None


Size = Annotated[int, Query(ge=1, le=_MAX_PAGE, description="items per page")]
After = Annotated[
    str | None,
    Query(max_length=8192, description="the `next_cursor` of the previous page"),
]
ClientName = Annotated[
    str | None, Query(min_length=1, max_length=255, description="only this client (by name)")
]
Order = Annotated[Literal["asc", "desc"], Query(description="oldest first (asc) or newest first")]
Since = Annotated[
    AwareDatetime | None,
    AfterValidator(_in_utc),
    Query(description="requests created at or after this instant (ISO 8601, with offset)"),
]
Until = Annotated[
    AwareDatetime | None,
    AfterValidator(_in_utc),
    Query(description="requests created before this instant (ISO 8601, with offset)"),
]


@contextlib.contextmanager
def _answering(timeout: float) -> Iterator[None]:
    """Give MongoDB ``timeout`` seconds, and turn what goes wrong into the HTTP error it means.

    ``pymongo.timeout`` bounds everything inside, server selection included, so a
    stopped MongoDB costs ``timeout`` rather than the driver's 30 s.
    """
    try:
        with pymongo.timeout(timeout):
            yield
    except InvalidInput as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    except (StorageError, PyMongoError) as exc:
        raise HTTPException(
            status_code=503,
            detail=f"the request history is unavailable (MongoDB did not answer within "
            f"{timeout:g} s); try again later",
        ) from exc
    except OverflowError as exc:
        # Date arithmetic on a bound or a cursor value at the very end of the calendar.
        raise HTTPException(
            status_code=400,
            detail="a date in this request is too near the ends of the calendar; "
            "narrow the window, or start the listing over",
        ) from exc


async def _client_id(name: str | None) -> ObjectId | None:
    if name is None:
        return None
    with storage_errors("look up an LLM client"):
        raw = await LLMClient.get_pymongo_collection().find_one({"name": {"$eq": name}}, {"_id": 1})
    if raw is None:
        raise HTTPException(status_code=404, detail=f"there is no LLM client named {name!r}")
    return ObjectId(raw["_id"])


# -- sessions, paged by keyset ---------------------------------------------------------------


async def _session_page(
    *,
    base: str,
    client_id: ObjectId | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    size: int,
    after: str | None,
) -> SessionPage:
    """A page of :func:`llmreq_mongo.analytics.session_page`, with each session's URL.

    ``base`` is the path of the listing, which each session's ``requests_url`` extends.
    """
    page = await session_page(
        llm_client=client_id, since=since, until=until, size=size, after=after
    )
    names = await client_names_of(s.llm_client_id for s in page.items)
    items = [
        SessionOut(
            session_key=s.session_key,
            llm_client_id=str(s.llm_client_id),
            requests=s.requests,
            first_at=s.first_at,
            last_at=s.last_at,
            requests_url=_requests_url(base, s.session_key, names.get(s.llm_client_id)),
        )
        for s in page.items
    ]
    return SessionPage(items=items, next_cursor=page.next_cursor)


def _requests_url(base: str, session_key: str, client: str | None) -> str:
    """The path of a session's requests: every character of the key that is not
    unreserved, ``/`` included, is percent-encoded, so the key is one path part.

    A key no path part carries (:func:`~llmreq_mongo._checks.key_fits_a_path`)
    goes in the query of ``/requests`` instead.
    """
    query = "" if client is None else f"client={quote(client, safe='')}"
    if not key_fits_a_path(session_key):
        top = base.rsplit("/", 1)[0]
        key = f"session_key={quote(session_key, safe='')}"
        return f"{top}/requests?{key}" + (f"&{query}" if query else "")
    url = f"{base}/{quote(session_key, safe='')}/requests"
    return f"{url}?{query}" if query else url


# -- the router ------------------------------------------------------------------------------


def _not_stored(response: Response) -> None:
    """Every answer holds recorded payloads: no browser or proxy may keep a copy."""
    response.headers["Cache-Control"] = "no-store"


def history_router(
    *,
    dependencies: Sequence[params.Depends] | None = None,
    public: bool = False,
    prefix: str = "",
    tags: Sequence[str] = ("llmreq history",),
    timeout: float = DEFAULT_TIMEOUT,
) -> APIRouter:
    """A read-only JSON API over the recorded requests, documented in OpenAPI.

    Endpoints (under ``prefix``):

    - ``GET /clients``: the LLM clients, by name, paged.
    - ``GET /sessions``: sessions by last activity (``client``, ``since``,
      ``until``), paged; each carries its ``requests_url``.
    - ``GET /sessions/{session_key}/requests``: one session's requests in
      order (``client``, ``order``), paged, each with its ``response``
      (every field of :class:`~llmreq_mongo.LLMResponse`, or null). The key is the rest of the path
      up to ``/requests``, percent-decoded, so a key holding ``/`` (sent as
      ``%2F`` or as is), ``%``, spaces or any Unicode is read as it was
      recorded.
    - ``GET /requests?session_key=...``: the same, the key in the query: the
      ``requests_url`` of the keys no path part carries (``.``, ``..``, a
      key holding a newline).
    - ``GET /usage``: request counts per day or hour (``by``, ``client``,
      ``session_key``, ``since``, ``until``, ``tz``).
    - ``GET /usage/clients``: requests, sessions, first and last seen per client.

    Pages take ``size`` (1 to 200) and ``after`` (the previous page's
    ``next_cursor``); a cursor that was altered or belongs to another listing
    answers 400. Datetimes must carry a UTC offset (a naive one answers 422),
    and every datetime in an answer is UTC to the millisecond
    (``2026-03-01T22:30:19.970Z``).

    Each endpoint gives MongoDB ``timeout`` seconds (server selection, the
    query and reading its results); past it, or when MongoDB cannot be
    reached, it answers 503 instead of waiting out the driver's 30 s.

    The API shows every recorded payload, so its answers carry
    ``Cache-Control: no-store``. Protect it with ``dependencies``,
    for example ``[Depends(require_api_key)]``; to mount it without any, say
    so with ``public=True``.

    Example::

        app.include_router(
            history_router(dependencies=[Depends(require_api_key)]), prefix="/llmreq"
        )

    Raises:
        InvalidInput: neither ``dependencies`` nor ``public=True`` was given,
            or both were; or ``prefix``, ``tags`` or ``timeout`` is malformed.
    """
    deps = checked_dependencies(dependencies, public, what="history_router()")
    if not isinstance(prefix, str) or (prefix and (prefix[0] != "/" or prefix[-1] == "/")):
        raise InvalidInput(f"prefix must be empty or a path such as '/llmreq', got {prefix!r}")
    if isinstance(tags, str):
        raise InvalidInput(f"tags takes a sequence of tag names, got the string {tags!r}")
    timeout = check_timeout(timeout)
    router = APIRouter(
        prefix=prefix,
        tags=list(tags),
        dependencies=[*deps, Depends(_not_stored)],
        responses=_ERRORS,
    )

    @router.get("/clients", response_model=ClientPage, summary="List the LLM clients")
    async def list_clients(size: Size = _DEFAULT_PAGE, after: After = None) -> ClientPage:
        """The LLM clients, ordered by name."""
        with _answering(timeout):
            page = await LLMClient.objects.order_by("name").page(size=size, after=after)
        items = [
            ClientOut(
                id=str(c.id),
                name=c.name,
                description=c.description,
                created_at=c.created_at,
                updated_at=c.updated_at,
            )
            for c in page.items
        ]
        return ClientPage(items=items, next_cursor=page.next_cursor)

    @router.get("/sessions", response_model=SessionPage, summary="List sessions")
    async def list_sessions(
        request: Request,
        client: ClientName = None,
        since: Since = None,
        until: Until = None,
        size: Size = _DEFAULT_PAGE,
        after: After = None,
    ) -> SessionPage:
        """Sessions, most recently active first, with their request counts.

        The first page fixes the listing's end (``until``, or now); later
        pages keep it, so records arriving while paging do not shift pages.
        """
        with _answering(timeout):
            client_id = await _client_id(client)
            return await _session_page(
                base=request.url.path.rstrip("/"),
                client_id=client_id,
                since=since,
                until=until,
                size=size,
                after=after,
            )

    @router.get(
        "/sessions/{session_key:path}/requests",
        response_model=RequestPage,
        summary="One session's requests",
    )
    async def session_requests(
        session_key: Annotated[str, Path(min_length=1, max_length=255)],
        client: ClientName = None,
        order: Order = "asc",
        size: Size = _DEFAULT_PAGE,
        after: After = None,
    ) -> RequestPage:
        """A session's requests in time order, aggregation rollups included.

        The session key is the rest of the path before ``/requests``,
        percent-decoded: ``/sessions/user%2F42/requests`` reads ``user/42``.
        """
        return await requests_page(session_key, client, order, size, after)

    @router.get(
        "/requests",
        response_model=RequestPage,
        summary="One session's requests, the key in the query",
    )
    async def session_requests_by_key(
        session_key: Annotated[str, Query(min_length=1, max_length=255)],
        client: ClientName = None,
        order: Order = "asc",
        size: Size = _DEFAULT_PAGE,
        after: After = None,
    ) -> RequestPage:
        """The same as ``/sessions/{session_key}/requests``, for the keys no path part
        carries (``.``, ``..``, a key holding a newline): their ``requests_url`` is this."""
        return await requests_page(session_key, client, order, size, after)

    async def requests_page(
        session_key: str, client: str | None, order: str, size: int, after: str | None
    ) -> RequestPage:
        with _answering(timeout):
            client_id = await _client_id(client)
            qs = LLMClientRequest.objects.for_session(session_key, llm_client=client_id)
            if order == "desc":
                qs = qs.order_by("-created_at")
            page = await qs.page(size=size, after=after)
        items = [
            RequestOut(
                id=str(r.id),
                llm_client_id=str(r.llm_client_id),
                session_key=r.session_key,
                is_aggregation=r.is_aggregation,
                request=r.request,
                response=response_out(r.response),
                created_at=r.created_at,
            )
            for r in page.items
        ]
        return RequestPage(items=items, next_cursor=page.next_cursor)

    @router.get("/usage", response_model=UsageOut, summary="Request counts per day or hour")
    async def usage(
        by: Annotated[Literal["day", "hour"], Query()] = "day",
        client: ClientName = None,
        session_key: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
        since: Since = None,
        until: Until = None,
        tz: Annotated[str, Query(min_length=1, max_length=64, description="IANA zone")] = "UTC",
    ) -> UsageOut:
        """Raw requests per bucket, oldest first, empty buckets included."""
        with _answering(timeout):
            client_id = await _client_id(client)
            buckets = await analytics.request_counts(
                by=by,
                llm_client=client_id,
                session_key=session_key,
                since=since,
                until=until,
                tz=tz,
            )
        return UsageOut(
            by=by,
            tz=tz,
            buckets=[UsageBucketOut(start=b.start, count=b.count) for b in buckets],
        )

    @router.get("/usage/clients", response_model=list[ClientUsageOut], summary="Usage per client")
    async def usage_by_client(since: Since = None, until: Until = None) -> list[ClientUsageOut]:
        """Per client: requests, distinct sessions, first and last seen; busiest first."""
        with _answering(timeout):
            rows = await analytics.client_usage(since=since, until=until)
        return [
            ClientUsageOut(
                llm_client_id=str(u.llm_client_id),
                name=u.name,
                requests=u.requests,
                sessions=u.sessions,
                first_at=u.first_at,
                last_at=u.last_at,
            )
            for u in rows
        ]

    return router
