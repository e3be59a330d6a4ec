"""One transport for two packages: httpx, and httpx2 (its successor, with the same API).

The openai SDK takes an ``httpx`` client (or an ``httpx2`` one); the anthropic
SDK from 2.x on takes only an ``httpx2`` client. Their base classes are plain
classes with the same methods, so a class deriving from both is a transport,
and a byte stream, for either: the client's ``isinstance`` checks pass, and
the recording transport serves both kinds of client. ``httpx2`` is optional:
without it the classes derive from httpx's alone.

Needs httpx (the ``httpx`` extra); importing this module without it raises
:class:`~llmreq_mongo.errors.ExtraMissing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmreq_mongo.errors import ExtraMissing, InvalidInput

try:
    import httpx
except ImportError as exc:
    raise ExtraMissing("httpx", feature="llmreq_mongo.integrations.httpx") from exc

try:
    import httpx2
except ImportError:
    HAS_HTTPX2 = False
else:
    HAS_HTTPX2 = True

__all__ = [
    "HAS_HTTPX2",
    "REQUEST_NOT_READ",
    "AnyRequest",
    "AnyResponse",
    "AnyTransport",
    "StreamBase",
    "TransportBase",
    "default_transport",
    "package_of_request",
    "package_of_transport",
]

if TYPE_CHECKING or HAS_HTTPX2:
    AnyRequest = httpx.Request | httpx2.Request
    AnyResponse = httpx.Response | httpx2.Response
    AnyTransport = httpx.AsyncBaseTransport | httpx2.AsyncBaseTransport
    REQUEST_NOT_READ: tuple[type[Exception], ...] = (httpx.RequestNotRead, httpx2.RequestNotRead)

    class TransportBase(httpx.AsyncBaseTransport, httpx2.AsyncBaseTransport):
        """An async transport of both httpx and httpx2."""

        async def handle_async_request(self, request: Any) -> Any:
            raise NotImplementedError

        async def aclose(self) -> None:
            """Close the transport."""

    class StreamBase(httpx.AsyncByteStream, httpx2.AsyncByteStream):
        """An async byte stream of both httpx and httpx2."""

else:  # httpx2 is not installed
    AnyRequest = httpx.Request
    AnyResponse = httpx.Response
    AnyTransport = httpx.AsyncBaseTransport
    REQUEST_NOT_READ = (httpx.RequestNotRead,)

    class TransportBase(httpx.AsyncBaseTransport):
        """An async httpx transport."""

    class StreamBase(httpx.AsyncByteStream):
        """An async httpx byte stream."""


def package_of_request(request: Any) -> str:
    """``"httpx"`` or ``"httpx2"``: the package ``request`` comes from.

    Raises:
        InvalidInput: it is neither's request.
    """
    if isinstance(request, httpx.Request):
        return "httpx"
    if HAS_HTTPX2 and isinstance(request, httpx2.Request):
        return "httpx2"
    raise InvalidInput(f"expected an httpx or httpx2 Request, got {type(request).__name__}")


def package_of_transport(transport: Any) -> str | None:
    """The package ``transport`` belongs to; None when it serves both.

    Raises:
        InvalidInput: it is not an async transport of either.
    """
    of_httpx = isinstance(transport, httpx.AsyncBaseTransport)
    of_httpx2 = HAS_HTTPX2 and isinstance(transport, httpx2.AsyncBaseTransport)
    if of_httpx and of_httpx2:
        return None
    if of_httpx:
        return "httpx"
    if of_httpx2:
        return "httpx2"
    raise InvalidInput(
        "transport must be an httpx.AsyncBaseTransport (httpx.AsyncHTTPTransport(), "
        f"httpx.ASGITransport(app)) or an httpx2 one, got {type(transport).__name__}"
    )


def default_transport(package: str) -> AnyTransport:
    """A new ``AsyncHTTPTransport`` of ``package``: what its ``AsyncClient`` uses by default."""
    if package == "httpx2":
        return httpx2.AsyncHTTPTransport()
    return httpx.AsyncHTTPTransport()
