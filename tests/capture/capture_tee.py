"""A transport that copies every body chunk an SDK client reads (httpx or httpx2)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2


@dataclasses.dataclass
class Exchange:
    """One call as the SDK saw it: its path, its response head, and the body bytes it read."""

    path: str
    status: int
    content_type: str | None
    chunks: list[bytes]


def _tee_classes(http: Any) -> Any:
    """A tee transport for ``http``, the httpx package or its successor httpx2.

    The openai SDK takes an ``httpx`` client; the anthropic SDK from 2.x on
    only an ``httpx2`` one. The two packages have the same API.
    """

    class TeeStream(http.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, inner: Any, into: list[bytes]) -> None:
            self._inner = inner
            self._into = into
            self._read = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            # ASGITransport's stream can be iterated again (the SDKs do so when
            # they close a response); only the first pass is what the client read.
            first, self._read = not self._read, True
            async for chunk in self._inner:
                if first:
                    self._into.append(bytes(chunk))
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    class TeeTransport(http.AsyncBaseTransport):  # type: ignore[misc]
        """Passes every request on and copies each body chunk the client reads."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.exchanges: list[Exchange] = []

        async def handle_async_request(self, request: Any) -> Any:
            response = await self.inner.handle_async_request(request)
            exchange = Exchange(
                request.url.path, response.status_code, response.headers.get("content-type"), []
            )
            self.exchanges.append(exchange)
            return http.Response(
                response.status_code,
                headers=response.headers,
                stream=TeeStream(response.stream, exchange.chunks),
                extensions=response.extensions,
            )

        async def aclose(self) -> None:
            await self.inner.aclose()

    return TeeTransport


TeeTransport = _tee_classes(httpx)
Tee2Transport = _tee_classes(httpx2)
