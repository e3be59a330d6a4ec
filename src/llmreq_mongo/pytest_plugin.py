"""pytest fixtures for testing code that uses llmreq-mongo against a real server.

Installing the package registers this plugin (through the ``pytest11`` entry
point); nothing needs importing. With the ``embedded`` extra the fixtures run
the embedded engine, once per test session; with ``MONGODB_URI`` set they use
that MongoDB instead.

- ``llmreq_engine``: the server, with ``.uri`` and ``.embedded``.
- ``llmreq_db``: a fresh database, initialised by :func:`llmreq_mongo.init`
  (documents registered, indexes made), dropped after the test. It yields the
  :class:`~llmreq_mongo.Handle`.

Example::

    async def test_history(llmreq_db):
        client = await LLMClient.objects.create(name="bot")
        await LLMClientRequest.objects.create(llm_client=client, request={"q": 1})
        assert await client.llmclientrequests.count() == 1

Async tests need pytest-asyncio (``asyncio_mode = "auto"`` or the
``@pytest.mark.asyncio`` marker). ``llmreq_db`` runs on pytest-asyncio's
fixture loop, and its database client belongs to that loop: tests on a wider
loop (``loop_scope="module"``) need ``asyncio_default_fixture_loop_scope``
set to the same scope (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from llmreq_mongo._connection import Handle, init
from llmreq_mongo.embedded import EmbeddedMongo

__all__ = ["TestServer", "llmreq_db", "llmreq_engine"]


@dataclass(frozen=True)
class TestServer:
    """The server the fixtures use."""

    __test__ = False  # not a test class, whatever pytest's name rules say

    uri: str
    #: True for the embedded engine, False for ``MONGODB_URI``.
    embedded: bool


@pytest.fixture(scope="session")
def llmreq_engine() -> Iterator[TestServer]:
    """The embedded engine for the whole session, or ``MONGODB_URI`` when set."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield TestServer(uri=uri, embedded=False)
        return
    # A child process: the engine gets a core of its own instead of sharing
    # the test process's interpreter, and its sockets live outside it.
    # Test commands stay on, as in-process: fault-injection tests need
    # `configureFailPoint`.
    engine = EmbeddedMongo(process=True, enable_test_commands=True)
    asyncio.run(engine.start())
    try:
        yield TestServer(uri=engine.uri, embedded=True)
    finally:
        asyncio.run(engine.stop())


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin is useless without it anyway
    pass
else:

    @pytest_asyncio.fixture
    async def llmreq_db(llmreq_engine: TestServer) -> AsyncIterator[Handle]:
        """A fresh, initialised database for one test, dropped afterwards."""
        name = f"llmreq_test_{uuid.uuid4().hex[:12]}"
        handle = await init(llmreq_engine.uri, database=name)
        try:
            yield handle
        finally:
            await handle.client.drop_database(name)
            await handle.close()
