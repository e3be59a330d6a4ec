"""The pytest plugin as a user meets it: a test file in a project of their own.

The user's project has no conftest and no pytest configuration: installing the package
is what makes ``llmreq_engine`` and ``llmreq_db`` available. The run is a separate
pytest process with warnings as errors. It is pointed at this session's server through
``MONGODB_URI``, as a user's CI points it at theirs (and it saves starting a second
engine); the embedded-engine side of the plugin is what every other test here runs on.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

from llmreq_mongo.pytest_plugin import TestServer

USER_TESTS = """
import pytest
from fastapi import FastAPI
import httpx

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo.integrations.asgi import LLMRequestLogger
from llmreq_mongo.integrations.fastapi import LLMReqLifespan

seen_databases = []


def test_the_engine_is_there(llmreq_engine):
    assert llmreq_engine.uri.startswith("mongodb://")


@pytest.mark.asyncio
async def test_history(llmreq_db):
    seen_databases.append(llmreq_db.database.name)
    client = await LLMClient.objects.create(name="bot")
    await LLMClientRequest.objects.create(llm_client=client, request={"q": 1}, session_key="s")
    assert await client.llmclientrequests.count() == 1


@pytest.mark.asyncio
async def test_each_test_gets_a_fresh_database_and_the_last_one_is_gone(llmreq_db):
    seen_databases.append(llmreq_db.database.name)
    assert await LLMClient.objects.count() == 0
    names = await llmreq_db.client.list_database_names()
    assert seen_databases[0] not in names
    assert seen_databases[0] != seen_databases[1]


@pytest.mark.asyncio
async def test_my_app_records_its_requests(llmreq_db):
    llmreq = LLMReqLifespan(target=llmreq_db.database, llm_client="my-app")
    app = FastAPI(lifespan=llmreq)
    app.add_middleware(
        LLMRequestLogger,
        recorder=llmreq.current_recorder,
        llm_client=llmreq.current_client,
        paths=["/chat"],
    )

    @app.post("/chat")
    async def chat(body: dict) -> dict:
        return {"ok": True}

    async with llmreq(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as web:
            await web.post("/chat", json={"hello": "world"}, headers={"x-session-key": "k"})
        await llmreq.recorder.flush()
    history = await LLMClientRequest.objects.for_session("k").to_list()
    assert [r.request for r in history] == [{"hello": "world"}]
"""


#: Tests that share one loop per module, with the fixtures' loop set to match
#: (docs/testing.md, "Tests that share an event loop").
MODULE_LOOP_TESTS = """
import asyncio

import pytest

from llmreq_mongo import LLMClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
loops = []


async def test_one(llmreq_db):
    loops.append(asyncio.get_running_loop())
    await LLMClient.objects.create(name="bot")
    assert await LLMClient.objects.count() == 1


async def test_two_on_the_same_loop_with_a_fresh_database(llmreq_db):
    loops.append(asyncio.get_running_loop())
    assert loops[0] is loops[1]
    assert await LLMClient.objects.count() == 0
"""


def user_project(project: Path, tests: str, config: str | None = None) -> Path:
    """A project of the user's own: ``tests`` in one file, and ``config`` as its pytest.ini."""
    project.mkdir()
    (project / "test_my_history.py").write_text(textwrap.dedent(tests))
    if config is not None:
        (project / "pytest.ini").write_text(textwrap.dedent(config))
    return project


async def run_user_tests(llmreq_engine: TestServer, project: Path) -> str:
    """Run ``project``'s tests as the user would, against this session's server; their output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LLMREQ_"))}
    env["MONGODB_URI"] = llmreq_engine.uri
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-W",
        "error",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(project),
        str(project),
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


async def test_a_users_test_file_gets_the_fixtures_from_the_installed_plugin(
    llmreq_engine: TestServer, tmp_path: Path
) -> None:
    project = user_project(tmp_path / "user_project", USER_TESTS)
    text = await run_user_tests(llmreq_engine, project)
    assert "4 passed" in text, text


async def test_tests_on_a_module_loop_get_the_fixtures_on_it_when_configured_so(
    llmreq_engine: TestServer, tmp_path: Path
) -> None:
    config = """
        [pytest]
        asyncio_default_fixture_loop_scope = module
    """
    project = user_project(tmp_path / "user_project", MODULE_LOOP_TESTS, config)
    text = await run_user_tests(llmreq_engine, project)
    assert "2 passed" in text, text
