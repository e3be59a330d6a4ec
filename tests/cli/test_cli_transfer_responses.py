"""``llmreq export`` and ``llmreq import`` carry each record's response, exactly."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from bson import ObjectId
from clitools import UTC, chat, export_record, write_jsonl

from llmreq_mongo import LLMResponse

T0 = dt.datetime(2026, 3, 2, 9, 30, 0, 123000, tzinfo=UTC)
BOT = (ObjectId(), "support-bot")
FIELDS = [
    "status",
    "body",
    "model",
    "response_id",
    "finish_reasons",
    "usage",
    "error",
    "stream",
    "latency_ms",
    "ttft_ms",
    "completed_at",
    "truncated",
]

#: A response body that is easy to get subtly wrong: awkward keys, numbers, unicode.
AWKWARD_BODY = {
    "$schema": "x",
    "a.b": {"%c": [1, 2.5, -0.0, 1e300, 2**62, None, True]},
    "choices": [{"message": {"role": "assistant", "content": "héllo \u2603 \U0001f600 \n"}}],
}


def response(**fields: Any) -> dict[str, Any]:
    """A response in the export format, every field given (the defaults of a plain answer)."""
    out: dict[str, Any] = {
        "status": 200,
        "body": {"id": "chatcmpl-1", "choices": []},
        "model": "gpt-4o-2024-08-06",
        "response_id": "chatcmpl-1",
        "finish_reasons": ["stop"],
        "usage": {
            "input_tokens": 31,
            "output_tokens": 12,
            "total_tokens": 43,
            "cache_read_input_tokens": 16,
            "cache_creation_input_tokens": None,
            "reasoning_output_tokens": 0,
        },
        "error": None,
        "stream": False,
        "latency_ms": 812.5,
        "ttft_ms": None,
        "completed_at": "2026-03-02T09:30:00.936Z",
        "truncated": False,
    }
    out.update(fields)
    return out


def _records() -> list[dict[str, Any]]:
    def at(seconds: int) -> dt.datetime:
        return T0 + dt.timedelta(seconds=seconds)

    return [
        export_record(created_at=at(0), client=BOT, request=chat(("user", "hi")))
        | {"response": response(body=AWKWARD_BODY)},
        export_record(created_at=at(1), client=BOT, request=chat(("user", "stream")))
        | {"response": response(stream=True, ttft_ms=120.0, usage=None, latency_ms=5)},
        export_record(created_at=at(2), client=BOT, request=chat(("user", "fail")))
        | {
            "response": response(
                status=None,
                body=None,
                model=None,
                response_id=None,
                finish_reasons=[],
                usage=None,
                error="ConnectError: [Errno 111] Connection refused",
                latency_ms=2.25,
            )
        },
        export_record(created_at=at(3), client=BOT, request=chat(("user", "big")))
        | {"response": response(body=None, truncated=True, status=429, error="tokens: slow")},
        # A request recorded alone.
        export_record(created_at=at(4), client=BOT, request=chat(("user", "alone")))
        | {"response": None},
    ]


def _copy(cli: Any, sync_client: Any, suffix: str) -> Any:
    name = f"{cli.database}_{suffix}"
    return type(cli)(cli.uri, name, sync_client[name])


def test_export_import_export_of_responses_is_byte_identical(cli, sync_client, tmp_path):
    # Records of every kind the demo writes (through the recorder), and awkward ones.
    cli("demo", "--requests", "80", "--sessions", "8")
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", _records())))
    first = tmp_path / "first.jsonl"
    cli("export", "-o", str(first))
    lines = [json.loads(line) for line in first.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 85
    assert sum(1 for line in lines if line["response"] is not None) == 84

    copy = _copy(cli, sync_client, "copy")
    try:
        assert copy.json("import", str(first))["imported"] == 85
        second = tmp_path / "second.jsonl"
        copy("export", "-o", str(second))
        assert second.read_bytes() == first.read_bytes()
        # The stored documents are the same too: escaped body keys, Int64 counts, times.
        original = list(cli.requests.find({}, sort=[("_id", 1)]))
        copied = list(copy.requests.find({}, sort=[("_id", 1)]))
        assert copied == original
        awkward = next(
            d
            for d in original
            if d["response"] and d["response"]["body"] and "%24schema" in d["response"]["body"]
        )
        assert awkward["response"]["usage"]["cache_read_input_tokens"] == 16
    finally:
        sync_client.drop_database(copy.database)


def test_export_writes_every_response_field_in_order(cli, tmp_path):
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", _records())))
    out = [json.loads(line) for line in cli("export", "-o", "-").stdout.splitlines()]
    assert list(out[0])[-2:] == ["request", "response"]
    assert list(out[0]["response"]) == FIELDS
    assert out[0]["response"] == response(body=AWKWARD_BODY)
    assert out[1]["response"]["usage"] is None and out[1]["response"]["latency_ms"] == 5.0
    assert out[2]["response"]["status"] is None
    assert out[2]["response"]["error"].startswith("ConnectError")
    assert out[3]["response"]["truncated"] is True and out[3]["response"]["body"] is None
    assert out[4]["response"] is None


def test_an_export_without_responses_still_imports(cli, tmp_path):
    old = export_record(created_at=T0, client=BOT, request=chat(("user", "old")))
    assert "response" not in old
    assert cli.json("import", str(write_jsonl(tmp_path / "old.jsonl", [old])))["imported"] == 1
    assert cli.requests.find_one()["response"] is None
    line = json.loads(cli("export", "-o", "-").stdout)
    assert line["response"] is None


def test_a_bad_response_is_a_bad_line_and_nothing_is_written(cli, tmp_path):
    cases = [
        (response(usage={"input_tokens": "5"}), "usage.input_tokens"),
        (response(completed_at="yesterday"), "response.completed_at"),
        (response(latency_ms=-1), "latency_ms"),
        (response(colour="blue"), "colour is not a field of response"),
        ({"status": 200}, "latency_ms is required"),
        ("ok", "response must be an object or null, got str"),
        (response(body={"x": float("nan")}), "response.body"),
    ]
    for i, (bad, message) in enumerate(cases):
        good = export_record(created_at=T0, client=BOT, request=chat(("user", "a")))
        wrong = export_record(created_at=T0, client=BOT, request=chat(("user", "b")))
        path = tmp_path / f"bad{i}.jsonl"
        path.write_text(
            json.dumps(good | {"response": response()})
            + "\n"
            + json.dumps(wrong | {"response": bad})
            + "\n",
            encoding="utf-8",
        )
        result = cli("import", str(path), ok=False)
        assert result.exit_code != 0, message
        assert "line 2" in result.stderr and message in result.stderr, (message, result.stderr)
        assert cli.requests.count_documents({}) == 0


def test_export_csv_has_response_columns(cli, tmp_path):
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", _records())))
    target = tmp_path / "out.csv"
    cli("export", "--format", "csv", "-o", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert list(rows[0])[-9:] == [
        "request",
        "response_status",
        "response_model",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "ttft_ms",
        "response_error",
        "response",
    ]
    first, streamed, unreachable, _, alone = rows
    assert (first["response_status"], first["response_model"]) == ("200", "gpt-4o-2024-08-06")
    assert (first["input_tokens"], first["output_tokens"], first["latency_ms"]) == (
        "31",
        "12",
        "812.5",
    )
    assert first["ttft_ms"] == "" and first["response_error"] == ""
    assert json.loads(first["response"]) == response(body=AWKWARD_BODY)
    assert (streamed["input_tokens"], streamed["ttft_ms"]) == ("", "120.0")
    assert unreachable["response_status"] == "" and unreachable["response_error"].startswith(
        "ConnectError"
    )
    assert all(alone[c] == "" for c in ("response_status", "latency_ms", "response"))


def test_exported_responses_read_back_as_the_library_reads_them(cli, tmp_path):
    """The exported object is the response's own fields: LLMResponse reads it as it is."""
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", _records())))
    for line in cli("export", "-o", "-").stdout.splitlines():
        exported = json.loads(line)["response"]
        if exported is None:
            continue
        completed = dt.datetime.fromisoformat(exported.pop("completed_at").replace("Z", "+00:00"))
        parsed = LLMResponse(**exported, completed_at=completed)
        assert parsed.model_dump(mode="json", exclude={"completed_at"}) == exported
