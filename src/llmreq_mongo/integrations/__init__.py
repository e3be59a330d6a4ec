"""Web framework integrations.

- :mod:`llmreq_mongo.integrations.asgi`: :class:`~llmreq_mongo.integrations.asgi.LLMRequestLogger`,
  a middleware for any ASGI application (Starlette, FastAPI, Litestar, ...) that records the
  calls to chosen paths, with what came back, through a :class:`~llmreq_mongo.Recorder`. It
  needs nothing beyond the standard library and the core of this package.
- :mod:`llmreq_mongo.integrations.fastapi`: a lifespan helper, dependencies and a read-only
  history API router for FastAPI (``pip install "llmreq-mongo[fastapi]"``).
- :mod:`llmreq_mongo.integrations.httpx`: ``RecordingTransport``, an httpx (and httpx2)
  transport with which any httpx-based SDK, openai's or anthropic's, records its own
  calls and what came back (``pip install "llmreq-mongo[httpx]"``).

Nothing is imported here, so importing the package never pulls in a web framework or an
HTTP client.
"""

from __future__ import annotations

__all__: list[str] = []
