"""Authentication: SCRAM-SHA-256, a least-privilege user, and passwords kept secret.

The engine has no localhost exception (docs/embedded-engine.md, §8): the users are
created on a start without auth, then the same storage is started again with
``require_auth=True``. The application's user holds ``readWrite`` on its own
database and nothing else, which must be enough for ``init`` (it creates the
indexes) and everything the library does.

No password may appear in a log line (every logger at DEBUG), an exception
message or chain, a ``repr``, or the command line's output.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _reliability import Tally, free_port
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from llmreq_mongo import (
    LLMClient,
    LLMClientRequest,
    LLMReqError,
    Recorder,
    StorageError,
    analytics,
    init,
)
from llmreq_mongo._cli import app as cli_app
from llmreq_mongo.embedded import EmbeddedMongo
from llmreq_mongo.integrations.fastapi import LLMReqLifespan

DATABASE = "llmreq_auth"
PASSWORD = "s3cret-Pa55-4e7a"
WRONG = "wr0ng-Pa55-91c2"
ROOT_PASSWORD = "r00t-Pa55-0b1d"
SECRETS = (PASSWORD, WRONG, ROOT_PASSWORD)


@dataclass
class AuthEngine:
    engine: EmbeddedMongo
    host: str  # host:port

    def uri(self, user: str | None, password: str | None, database: str = DATABASE) -> str:
        creds = f"{user}:{password}@" if user else ""
        return (
            f"mongodb://{creds}{self.host}/{database}?authSource={DATABASE}"
            "&serverSelectionTimeoutMS=2000"
        )


@pytest.fixture(scope="module")
async def auth_engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthEngine]:
    path = tmp_path_factory.mktemp("auth-store")
    async with EmbeddedMongo(path) as setup:
        admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(setup.uri)
        try:
            await admin.admin.command("createUser", "root", pwd=ROOT_PASSWORD, roles=["root"])
            await admin[DATABASE].command(
                "createUser",
                "app",
                pwd=PASSWORD,
                roles=[{"role": "readWrite", "db": DATABASE}],
                mechanisms=["SCRAM-SHA-256"],
            )
        finally:
            await admin.close()
    async with EmbeddedMongo(path, require_auth=True) as engine:
        yield AuthEngine(engine, engine.uri.removeprefix("mongodb://").rstrip("/"))


def _assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a password appears in {where}: {text!r}"


def _all_of(exc: BaseException) -> str:
    """An exception as a person or a log would see it: messages, reprs and the chain."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(getattr(seen, "details", None))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)


async def test_read_write_user_can_do_everything_the_library_does(
    auth_engine: AuthEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handle = await init(auth_engine.uri("app", PASSWORD), database=DATABASE)
    try:
        indexes = await handle.database["llm_client_requests"].index_information()
        assert {"llmreq_session_time", "llmreq_client_time", "llmreq_created_at"} <= set(indexes)
        client = await LLMClient.objects.create(name="authed")
        req = await LLMClientRequest.objects.create(
            llm_client=client, request={"q": "hi"}, session_key="auth-session"
        )
        assert (await LLMClientRequest.objects.get(pk=req.id)).request == {"q": "hi"}
        async with Recorder(flush_interval=0.01) as recorder:
            recorder.record(client, {"q": "bg"}, session_key="auth-session")
            await recorder.flush()
        page = await LLMClientRequest.objects.for_session("auth-session").page(size=10)
        assert len(page.items) == 2
        summaries = await analytics.session_summaries(llm_client=client)
        assert [s.requests for s in summaries] == [2]
        assert (
            await LLMClientRequest.objects.filter(session_key="auth-session").update(
                is_aggregation=False
            )
            == 2
        )
        # init again on an initialised database: readWrite still suffices.
        await init(handle.database)
        _assert_no_secret(repr(handle), "repr(Handle)")
        _assert_no_secret(repr(auth_engine.engine), "repr(EmbeddedMongo)")
        _assert_no_secret(repr(recorder), "repr(Recorder)")
    finally:
        await LLMClient.objects.filter(name="authed").delete()
        await handle.close()
    _assert_no_secret(_log_text(caplog), "the log")
    Tally(
        "auth",
        "readWrite user: init, writes, reads",
        "SCRAM-SHA-256, require_auth",
        attempted=1,
        acknowledged=1,
        result="ok",
        notes=f"{len(caplog.records)} log records at DEBUG, no password",
    ).file()


async def test_user_cannot_reach_another_database(auth_engine: AuthEngine) -> None:
    with pytest.raises(StorageError) as info:
        await init(auth_engine.uri("app", PASSWORD, "llmreq_other"), database="llmreq_other")
    assert "not authorized" in str(info.value).lower() or "unauthorized" in str(info.value).lower()
    _assert_no_secret(_all_of(info.value), "the error")


@pytest.mark.parametrize(
    ("user", "password"),
    [("app", WRONG), ("nobody", WRONG), (None, None)],
    ids=["wrong-password", "unknown-user", "no-credentials"],
)
async def test_bad_credentials_give_one_clear_error(
    auth_engine: AuthEngine,
    caplog: pytest.LogCaptureFixture,
    user: str | None,
    password: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    began = dt.datetime.now(dt.timezone.utc)
    with pytest.raises(LLMReqError) as info:
        await init(auth_engine.uri(user, password), database=DATABASE)
    elapsed = (dt.datetime.now(dt.timezone.utc) - began).total_seconds()
    error = info.value
    assert isinstance(error, StorageError)
    message = str(error).lower()
    assert "auth" in message, message
    if user is not None:
        # Refused credentials say what to check, not the server's raw reply.
        assert "check the user name, the password and authsource" in message, message
    _assert_no_secret(_all_of(error), "the error")
    _assert_no_secret(_log_text(caplog), "the log")
    Tally(
        "auth",
        f"bad credentials: {user or 'none'}",
        "SCRAM-SHA-256, require_auth",
        attempted=1,
        errors={type(error).__name__: 1},
        result="ok",
        notes=f"refused in {elapsed:.2f} s: {str(error)[:60]}",
    ).file()


def test_cli_never_prints_the_password(auth_engine: AuthEngine, tmp_path: Path) -> None:
    runner = CliRunner()
    for password, code in ((WRONG, 1), (PASSWORD, 0)):
        uri = auth_engine.uri("app", password)
        for args in (["clients"], ["sessions"], ["--debug", "clients"]):
            result = runner.invoke(cli_app, ["--uri", uri, "--database", DATABASE, *args])
            shown = result.output + result.stdout + result.stderr
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                shown += _all_of(result.exception)
            _assert_no_secret(shown, f"the output of llmreq {' '.join(args)}")
            if "--debug" not in args:
                assert result.exit_code == code, shown


async def test_fastapi_lifespan_with_a_wrong_password_says_so_without_it(
    auth_engine: AuthEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lifespan = LLMReqLifespan(target=auth_engine.uri("app", WRONG), database=DATABASE)
    _assert_no_secret(repr(lifespan), "repr(LLMReqLifespan)")
    with pytest.raises(LLMReqError) as info:
        async with lifespan(FastAPI()):
            pass
    assert "auth" in str(info.value).lower()
    _assert_no_secret(_all_of(info.value), "the lifespan's error")
    _assert_no_secret(_log_text(caplog), "the log")
    # The right password starts the app, its recorder included.
    async with LLMReqLifespan(
        target=auth_engine.uri("app", PASSWORD), database=DATABASE, llm_client="lifespan-bot"
    )(FastAPI()):
        assert await LLMClient.objects.filter(name="lifespan-bot").count() == 1
        await LLMClient.objects.filter(name="lifespan-bot").delete()


# PyMongo 4.20's async client leaves a socket for the garbage collector when it
# gives up on a server it never reached. The test drops its references and
# collects those sockets itself, ignoring their warnings for this test alone,
# instead of letting them surface in whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_cli_never_prints_the_password_of_an_unreachable_server() -> None:
    port = free_port()
    uri = f"mongodb://app:{PASSWORD}@127.0.0.1:{port}/{DATABASE}?authSource={DATABASE}"
    for args in (["clients"], ["--debug", "sessions"], ["--json", "clients"]):
        result = CliRunner().invoke(cli_app, ["--uri", uri, "--timeout", "0.5", *args])
        shown = result.output + result.stdout + result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            shown += _all_of(result.exception)
        _assert_no_secret(shown, f"the output of llmreq {' '.join(args)}")
        assert result.exit_code != 0
        del result
        gc.collect()
        gc.collect()
