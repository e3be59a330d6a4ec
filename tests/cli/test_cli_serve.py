"""``llmreq serve``: a long-lived embedded server, where TTL retention runs."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path
from typing import Any

import pymongo
from bson import ObjectId
from clitools import UTC, export_record, write_jsonl
from procs import llmreq, serving


def _count(uri: str, query: dict[str, Any]) -> int:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
    try:
        return client["llmreq"]["llm_client_requests"].count_documents(query)
    finally:
        client.close()


def test_ttl_retention_expires_requests_in_a_served_store(tmp_path: Path) -> None:
    now = dt.datetime.now(UTC)
    client = (ObjectId(), "bot")
    records = [
        export_record(created_at=now - dt.timedelta(days=3), client=client) for _ in range(4)
    ]
    records += [export_record(created_at=now, client=client, session_key="fresh")]
    write_jsonl(tmp_path / "seed.jsonl", records)
    with serving(tmp_path, "--ttl-interval", "0.5") as served:
        seeded = llmreq("--uri", served.uri, "import", "seed.jsonl", cwd=tmp_path)
        assert seeded.returncode == 0, seeded.stderr
        # Found through the state file; --yes: it deletes four requests at once.
        kept = llmreq("retention", "set", "--yes", "1d", cwd=tmp_path)
        assert kept.returncode == 0, kept.stderr
        deadline = time.monotonic() + 60
        while _count(served.uri, {}) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _count(served.uri, {}) == 1
        assert _count(served.uri, {"session_key": "fresh"}) == 1


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    with serving(tmp_path, "--port", "0") as served:
        made = llmreq(
            "--uri", served.uri, "demo", "--requests", "4", "--sessions", "1", cwd=tmp_path
        )
        assert made.returncode == 0, made.stderr
        status, err = served.stop(signal.SIGTERM)
        assert status == 143, err
        assert err[-1].startswith("terminated after "), err
        assert not (tmp_path / ".llmreq-data" / "llmreq-serve.json").exists()
    # Every acknowledged write is there when the store is opened again.
    read = llmreq("clients", "--json", cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    assert sum(row["requests"] for row in json.loads(read.stdout)) == 4


def test_ctrl_c_stops_the_server_with_status_130(tmp_path: Path) -> None:
    with serving(tmp_path, "--data-dir", "store") as served:
        assert (tmp_path / "store" / "llmreq-serve.json").is_file()
        status, err = served.stop(signal.SIGINT)
        assert status == 130, err
        assert err[0].startswith(f"serving store/ at {served.uri}"), err
        assert err[1:] == [err[-1]] and err[-1].startswith("interrupted after "), err
    assert not (tmp_path / "store" / "llmreq-serve.json").exists()


def test_serve_takes_no_uri(tmp_path: Path) -> None:
    proc = llmreq("--uri", "mongodb://127.0.0.1:1/", "serve", cwd=tmp_path)
    assert proc.returncode == 2
    assert "takes no --uri" in proc.stderr
    assert list(tmp_path.iterdir()) == []
