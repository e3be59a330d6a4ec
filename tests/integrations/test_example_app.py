"""examples/fastapi_app.py under uvicorn on a loopback port, talked to over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from llmreq_mongo import Handle, LLMClient, LLMClientRequest
from llmreq_mongo.pytest_plugin import TestServer

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def uvicorn(env: dict[str, str], log: Path) -> AsyncIterator[httpx.AsyncClient]:
    """Run the example app under uvicorn; yield a client for it; stop it as Ctrl-C does."""
    port = free_port()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web:
            for _ in range(300):
                if process.returncode is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await web.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"uvicorn did not answer:\n{read_log(log)}")
            if process.returncode is not None:
                pytest.fail(f"uvicorn exited at start:\n{read_log(log)}")
            yield web
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # a graceful shutdown runs the lifespan's end
            try:
                await asyncio.wait_for(process.wait(), timeout=60)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode == 0, read_log(log)
    assert "Application shutdown complete" in read_log(log)


def example_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMREQ_", "EXAMPLE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


async def test_the_example_records_its_requests_in_mongodb(
    llmreq_engine: TestServer, llmreq_db: Handle, tmp_path: Path
) -> None:
    env = example_env(
        LLMREQ_MONGODB_URI=llmreq_engine.uri,
        LLMREQ_DATABASE=llmreq_db.database.name,
        EXAMPLE_API_KEY="s3cret",
    )
    async with uvicorn(env, tmp_path / "uvicorn.log") as web:
        response = await web.post("/v1/chat/completions", json=CHAT, params={"session_key": "q"})
        assert response.status_code == 200
        completion = response.json()
        assert completion["object"] == "chat.completion"
        assert completion["choices"][0]["message"]["content"] == "You said: Hello"
        record_id = response.headers["x-llmreq-record-id"]

        stream_body = {**CHAT, "stream": True, "session_key": "b"}
        async with web.stream("POST", "/v1/chat/completions", json=stream_body) as streamed:
            events = [line async for line in streamed.aiter_lines() if line]
        assert events[-1] == "data: [DONE]" and len(events) == 4
    # uvicorn has stopped: the lifespan stopped the recorder, which wrote everything.
    records = await LLMClientRequest.objects.order_by("created_at", "id").to_list()
    assert [(r.request, r.session_key) for r in records] == [(CHAT, "q"), (stream_body, "b")]
    assert str(records[0].id) == record_id
    client = await LLMClient.objects.get(name="example-chat")
    assert {r.llm_client_id for r in records} == {client.id}


async def test_the_example_runs_on_the_embedded_engine_and_serves_its_history(
    tmp_path: Path,
) -> None:
    env = example_env(EXAMPLE_API_KEY="s3cret")  # no LLMREQ_MONGODB_URI: the embedded engine
    async with uvicorn(env, tmp_path / "uvicorn.log") as web:
        for n in range(3):
            body = {**CHAT, "messages": [{"role": "user", "content": f"message {n}"}]}
            sent = await web.post("/v1/chat/completions", json=body, headers={"x-session-key": "s"})
            assert sent.status_code == 200
        refused = await web.get("/llmreq/sessions/s/requests")
        assert refused.status_code == 401
        history: list[str] = []
        for _ in range(100):  # the recorder writes within its flush interval
            page = await web.get("/llmreq/sessions/s/requests", headers={"x-api-key": "s3cret"})
            assert page.status_code == 200
            history = [r["request"]["messages"][0]["content"] for r in page.json()["items"]]
            if len(history) == 3:
                break
            await asyncio.sleep(0.05)
        assert history == ["message 0", "message 1", "message 2"]

        # Session keys of any shape, through uvicorn's own URL decoding: list the
        # sessions, then open each one by the URL the listing gives.
        keys = ["user/42", "100%", "with space", "naïve ключ 鍵", "a?b#c"]
        for key in keys:
            body = {**CHAT, "session_key": key}
            assert (await web.post("/v1/chat/completions", json=body)).status_code == 200
        auth = {"x-api-key": "s3cret"}
        for _ in range(100):
            listing = (await web.get("/llmreq/sessions", headers=auth)).json()["items"]
            if len(listing) == len(keys) + 1:
                break
            await asyncio.sleep(0.05)
        assert sorted(s["session_key"] for s in listing) == sorted([*keys, "s"])
        for session in listing:
            page = await web.get(session["requests_url"], headers=auth)
            assert page.status_code == 200, (session, page.text)
            found = [r["session_key"] for r in page.json()["items"]]
            assert found == [session["session_key"]] * session["requests"]
