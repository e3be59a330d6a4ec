"""``RecordingTransport``: any httpx-based SDK records its own LLM calls, responses included.

Needs the ``httpx`` extra (``pip install "llmreq-mongo[httpx]"``).

Example::

    import httpx
    from openai import AsyncOpenAI
    from llmreq_mongo.integrations.httpx import RecordingTransport

    transport = RecordingTransport(recorder=recorder, llm_client=support_bot)
    llm = AsyncOpenAI(http_client=httpx.AsyncClient(transport=transport))
    await llm.chat.completions.create(
        model="gpt-4o", messages=[...], extra_headers={"X-Session-Key": "s1"}
    )

The same class serves httpx2 clients, which the anthropic SDK takes
(``AsyncAnthropic(http_client=httpx2.AsyncClient(transport=RecordingTransport(...)))``):
without ``transport`` it makes the default transport of the client's package.

Each ``POST`` to one of ``paths`` whose body is JSON is one call, recorded
through :meth:`Recorder.call <llmreq_mongo.Recorder.call>`: the request body
as the payload, and what came back (status, body or assembled stream, usage,
``latency_ms`` from the request to the end of the body, ``ttft_ms``) when the
client has read the response, or closed it. The client reads exactly the
bytes the provider sent, as they come. Each attempt of an SDK that retries
is a call of its own. A request that cannot be recorded (its body is not
JSON, the recorder refuses it) is sent all the same, and counted in
``stats``; recording never makes a call fail.

The ``X-Session-Key`` header, where the session key is read by default, is
removed from every request before it is sent (``forward_session_header=True``
sends it on): a session key often names a user, and the provider has no use
for it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from llmreq_mongo._capture import DEFAULT_MAX_BYTES
from llmreq_mongo._checks import a_type, check_int, check_session_key
from llmreq_mongo._documents import LLMClient
from llmreq_mongo._recording.call import RecordedCall
from llmreq_mongo._recording.recorder import Recorder
from llmreq_mongo.errors import InvalidInput, LLMReqError

from ._decoding import EXPANSION, BodyDecoder

# Without httpx, this import raises ExtraMissing, naming the extra to install.
from ._httpx_compat import (
    REQUEST_NOT_READ,
    AnyRequest,
    AnyResponse,
    AnyTransport,
    TransportBase,
    default_transport,
    package_of_request,
    package_of_transport,
)
from ._recorded_stream import RecordedStream, end_call
from ._session_keys import parse_json_body

__all__ = [
    "DEFAULT_PATHS",
    "SESSION_KEY_HEADER",
    "RecordingTransport",
    "SessionKeySource",
    "TransportStats",
]

logger = logging.getLogger(__name__)

#: The request paths recorded when no ``paths`` are given: OpenAI chat
#: completions and Responses, Anthropic Messages.
DEFAULT_PATHS: tuple[str, ...] = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
#: The request header the session key is read from by default.
SESSION_KEY_HEADER = "x-session-key"
_HEADER_BYTES = SESSION_KEY_HEADER.encode()

#: The session key of a call: a fixed string, or read from the request.
SessionKeySource: TypeAlias = str | Callable[[Any], "str | None"] | None


@dataclasses.dataclass
class TransportStats:
    """What a :class:`RecordingTransport` did, counted since it was created.

    Attributes:
        seen: requests to a recorded path.
        recorded: calls handed to the recorder.
        skipped: requests sent without being recorded: a body that is not
            JSON (or not read yet), no running recorder, or a record the
            recorder refused (the log says which).
        session_keys_ignored: session keys that were not usable (not a
            string, or longer than 255 characters): the call was recorded
            without one.
    """

    seen: int = 0
    recorded: int = 0
    skipped: int = 0
    session_keys_ignored: int = 0


class RecordingTransport(TransportBase):
    """An async httpx (and httpx2) transport that records the LLM calls sent through it.

    Args:
        transport: the transport that sends the requests: by default the
            ``AsyncHTTPTransport()`` of the client's package. Give one to
            set its options (``httpx.AsyncHTTPTransport(retries=2)``) or to
            reach an ASGI app (``httpx.ASGITransport(app)``).
        recorder: a started :class:`~llmreq_mongo.Recorder`, or a callable
            returning one (or None while there is none).
        llm_client: the saved :class:`~llmreq_mongo.LLMClient` the calls are
            recorded against, or a callable returning one (or None).
        session_key: a fixed session key; or a callable taking the
            request and returning its key (or None); by default the value
            of the ``X-Session-Key`` request header.
        paths: the request paths recorded: exact paths (``str``) and
            whole-path patterns (``re.Pattern``). Other requests pass through.
        forward_session_header: send the ``X-Session-Key`` header on to the
            provider (by default it is removed from every request).
        max_response_bytes: the most response body bytes kept per call.

    Raises:
        InvalidInput: an option is refused.
    """

    def __init__(
        self,
        transport: AnyTransport | None = None,
        *,
        recorder: Recorder | Callable[[], Recorder | None],
        llm_client: LLMClient | Callable[[], LLMClient | None],
        session_key: SessionKeySource = None,
        paths: Iterable[str | re.Pattern[str]] = DEFAULT_PATHS,
        forward_session_header: bool = False,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._transports: dict[str, AnyTransport] = {}
        self._package: str | None = None
        if transport is not None:
            self._package = package_of_transport(transport)
        self._given = transport
        self._recorder = _source("recorder", recorder, Recorder, "a llmreq_mongo.Recorder")
        if isinstance(llm_client, LLMClient) and llm_client.id is None:
            raise InvalidInput(
                f"LLMClient {llm_client.name!r} is not saved; create it first "
                "(await LLMClient.objects.get_or_create(name=...))"
            )
        self._llm_client = _source("llm_client", llm_client, LLMClient, "a saved LLMClient")
        if not (session_key is None or isinstance(session_key, str) or callable(session_key)):
            raise InvalidInput(
                "session_key must be a string, a callable taking the request, or None "
                f"(read the X-Session-Key header), got {a_type(session_key)}"
            )
        self._session_key = session_key
        self._exact, self._patterns = _split_paths(paths)
        if not isinstance(forward_session_header, bool):
            raise InvalidInput(
                f"forward_session_header must be a bool, got {a_type(forward_session_header)}"
            )
        self._forward_header = forward_session_header
        self._max_bytes = check_int("max_response_bytes", max_response_bytes)
        self.stats = TransportStats()

    def records(self, path: str) -> bool:
        """Whether a ``POST`` to ``path`` is recorded."""
        return path in self._exact or any(p.fullmatch(path) for p in self._patterns)

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` on, recording it and its response when its path is recorded."""
        inner = self._transport_for(request)
        forwarded = self._forwarded(request)
        if request.method != "POST" or not self.records(request.url.path):
            return await inner.handle_async_request(forwarded)
        self.stats.seen += 1
        call = self._start(request)
        if call is None:
            self.stats.skipped += 1
            return await inner.handle_async_request(forwarded)
        self.stats.recorded += 1
        try:
            response: AnyResponse = await inner.handle_async_request(forwarded)
        except BaseException as exc:
            await end_call(call, exc)
            raise
        await self._observe(call, request, response)
        return response

    async def aclose(self) -> None:
        """Close the transports this one sends through."""
        transports = list(self._transports.values())
        self._transports.clear()
        if self._given is not None and self._given not in transports:
            transports.append(self._given)
        for transport in transports:
            await transport.aclose()

    # -- the pieces of a call ---------------------------------------------------------

    def _transport_for(self, request: Any) -> Any:
        """The inner transport for ``request``'s package (httpx or httpx2)."""
        if self._given is not None:
            if self._package is not None and package_of_request(request) != self._package:
                raise InvalidInput(
                    f"this RecordingTransport sends through a {self._package} transport, but "
                    f"received a {package_of_request(request)} request: give it a transport of "
                    f"the client's package (for an httpx2 client, httpx2.AsyncHTTPTransport()), "
                    "or none"
                )
            return self._given
        package = package_of_request(request)
        inner = self._transports.get(package)
        if inner is None:
            inner = self._transports[package] = default_transport(package)
        return inner

    def _forwarded(self, request: Any) -> Any:
        """``request`` as it is sent: without the session key header, unless it is forwarded."""
        if self._forward_header or SESSION_KEY_HEADER not in request.headers:
            return request
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != _HEADER_BYTES]
        return type(request)(
            request.method,
            request.url,
            headers=headers,
            stream=request.stream,
            extensions=request.extensions,
        )

    def _start(self, request: AnyRequest) -> RecordedCall | None:
        """The call for ``request``, or None (logged) when it cannot be recorded."""
        where = f"{request.method} {request.url.path}"
        recorder: Recorder | None = self._recorder()
        llm_client: LLMClient | None = self._llm_client()
        if recorder is None or llm_client is None:
            logger.warning("llmreq: not recording %s: no recorder or llm_client yet", where)
            return None
        try:
            payload = parse_json_body(request.content)
        except REQUEST_NOT_READ:
            logger.warning("llmreq: not recording %s: its body is streamed, not JSON", where)
            return None
        except ValueError as exc:
            logger.warning("llmreq: not recording %s: the body is not JSON (%s)", where, exc)
            return None
        try:
            return recorder.call(llm_client, payload, session_key=self._key(request))
        except LLMReqError as exc:
            logger.warning("llmreq: not recording %s: %s", where, exc)
            return None

    def _key(self, request: AnyRequest) -> str | None:
        """The call's session key; one that is not usable is dropped (logged), not the call.

        A header (or the caller's function) may give what no record takes,
        and whoever sends the request must not be able to keep the call out
        of the history with it: the call is recorded without a key, as the
        ASGI middleware records it.
        """
        key = self._raw_key(request)
        try:
            return check_session_key(key)
        except InvalidInput as exc:
            self.stats.session_keys_ignored += 1
            logger.warning(
                "llmreq: recording %s %s without its session key: %s",
                request.method,
                request.url.path,
                exc,
            )
            return None

    def _raw_key(self, request: AnyRequest) -> Any:
        source = self._session_key
        if source is None:
            return request.headers.get(SESSION_KEY_HEADER) or None
        if isinstance(source, str):
            return source
        try:
            return source(request)
        except Exception:
            # The caller's function failed: the call is still recorded, without a key.
            logger.exception("llmreq: session_key raised; recording the call without one")
            return None

    async def _observe(
        self, call: RecordedCall, request: AnyRequest, response: AnyResponse
    ) -> None:
        """Start reading ``response`` into ``call``, and put the observed stream in its place."""
        headers = response.headers
        try:
            call.receive(
                status=response.status_code,
                content_type=headers.get("content-type"),
                path=request.url.path,
                max_bytes=self._max_bytes,
            )
        except InvalidInput as exc:  # a status outside 100-599
            await end_call(call, f"the response could not be read: {exc}")
            return
        if response.is_stream_consumed:
            # A transport that read the body itself (httpx.MockTransport's
            # responses): it is there whole, already decoded.
            call.feed(response.content)
            await end_call(call, None)
            return
        decoder = BodyDecoder(
            headers.get_list("content-encoding"), limit=self._max_bytes * EXPANSION
        )
        stream = _is_event_stream(headers.get("content-type"))
        response.stream = RecordedStream(response.stream, call, decoder, stream=stream)

    def __repr__(self) -> str:
        return f"RecordingTransport(paths={sorted(self._exact)!r}, stats={self.stats})"


def _is_event_stream(content_type: str | None) -> bool:
    """Whether a response of this ``Content-Type`` is an event stream."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def _source(name: str, value: Any, kind: type[Any], what: str) -> Callable[[], Any]:
    """``value`` as a callable read per request."""
    if isinstance(value, kind):
        return lambda: value
    if callable(value):
        source: Callable[[], Any] = value
        return source
    raise InvalidInput(f"{name} must be {what} or a callable returning one, got {a_type(value)}")


def _split_paths(
    paths: Iterable[str | re.Pattern[str]],
) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    if isinstance(paths, (str, re.Pattern)):
        raise InvalidInput(
            f"paths takes a sequence of paths and patterns, got the single value {paths!r}; "
            f"write paths=[{paths!r}]"
        )
    exact: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for path in paths:
        if isinstance(path, re.Pattern):
            patterns.append(path)
        elif isinstance(path, str) and path.startswith("/"):
            exact.add(path)
        else:
            raise InvalidInput(
                f"paths takes paths starting with '/' and compiled patterns, got {path!r}"
            )
    if not exact and not patterns:
        raise InvalidInput("paths is empty: give at least one path or pattern to record")
    return frozenset(exact), tuple(patterns)
