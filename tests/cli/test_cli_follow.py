"""``llmreq tail``: a request written after it starts is printed."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import subprocess
import sys
import threading
from typing import IO

from llmreq_mongo import LLMClient, LLMClientRequest, init


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def _record(uri: str, database: str, *items: tuple[str, str, dict[str, object]]) -> None:
    async def write() -> None:
        handle = await init(uri, database=database)
        try:
            clients: dict[str, LLMClient] = {}
            for name, key, payload in items:
                if name not in clients:
                    clients[name], _ = await LLMClient.objects.get_or_create(name=name)
                await LLMClientRequest.objects.create(
                    llm_client=clients[name], request=payload, session_key=key
                )
        finally:
            await handle.close()

    asyncio.run(write())


def test_tail_prints_requests_written_after_it_starts(cli):
    cli.db["llm_clients"].insert_one({"name": "seen", "description": "", "metadata": {}})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmreq_mongo",
            "--uri",
            cli.uri,
            "--database",
            cli.database,
            "tail",
            "--session",
            "s-live",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    threads = [
        threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        # The stream is open once it says so; only then write.
        ready = err.get(timeout=30)
        assert ready.startswith("following new requests of session s-live"), ready
        _record(
            cli.uri,
            cli.database,
            ("seen", "other-session", {"n": 0}),  # filtered out by the $match
            ("seen", "s-live", {"messages": [{"role": "user", "content": "hello"}]}),
            ("new-client", "s-live", {"n": 2}),  # a client created after tail started
        )
        first = json.loads(out.get(timeout=30))
        second = json.loads(out.get(timeout=30))
        assert first["session_key"] == "s-live" and first["llm_client"]["name"] == "seen"
        assert first["request"] == {"messages": [{"role": "user", "content": "hello"}]}
        assert second["request"] == {"n": 2}
        assert second["llm_client"]["name"] == "new-client"
        assert out.empty()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for thread in threads:
            thread.join(timeout=5)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert code == 130  # Ctrl-C ends it quietly
    leftover = []
    while not err.empty():
        leftover.append(err.get())
    assert "Traceback" not in "".join(leftover)


def test_tail_text_lines(cli, tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmreq_mongo",
            "--uri",
            cli.uri,
            "--database",
            cli.database,
            "tail",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    for stream, into in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=_lines, args=(stream, into), daemon=True).start()
    try:
        assert err.get(timeout=30).startswith("following new requests (Ctrl-C to stop)")
        _record(
            cli.uri,
            cli.database,
            ("bot", "k1", {"model": "m", "messages": [{"role": "user", "content": "Hi   there"}]}),
        )
        line = out.get(timeout=30)
        assert line.rstrip("\n").endswith("  bot  k1  user: Hi there")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
