"""Fixtures for the command-line tests.

The commands run their own event loop (``asyncio.run``), so these tests are
plain sync functions: calling a command from inside pytest-asyncio's loop would
nest loops. Each test gets a fresh database on the session's server (the
embedded engine, or ``MONGODB_URI``), checked and dropped with a sync client.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pytest
from typer.testing import CliRunner, Result

from llmreq_mongo._cli import app
from llmreq_mongo.pytest_plugin import TestServer

UTC = dt.timezone.utc


@dataclass
class Cli:
    """Runs ``llmreq --uri <server> --database <fresh> ...`` in-process."""

    uri: str
    database: str
    db: Any  # pymongo's sync Database, to check what the commands did

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(
            app, ["--uri", self.uri, "--database", self.database, *args], catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    @property
    def requests(self) -> Any:
        return self.db["llm_client_requests"]


@pytest.fixture(scope="session")
def sync_client(llmreq_engine: TestServer) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        llmreq_engine.uri, tz_aware=True
    )
    yield client
    client.close()


@pytest.fixture
def cli(
    llmreq_engine: TestServer, sync_client: pymongo.MongoClient[dict[str, Any]]
) -> Iterator[Cli]:
    name = f"llmreq_cli_{uuid.uuid4().hex[:12]}"
    yield Cli(llmreq_engine.uri, name, sync_client[name])
    sync_client.drop_database(name)
