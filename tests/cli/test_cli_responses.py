"""What came back, on the command line: ``show``, ``stats --measure`` and ``latency``."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from bson import ObjectId
from clitools import UTC, chat, export_record, write_jsonl

from llmreq_mongo._capture import LLMResponse, response_document

BOT = (ObjectId(), "support-bot")
CODER = (ObjectId(), "coder")
_STARTED = dt.datetime.now(UTC).replace(microsecond=0)
_MIDNIGHT = _STARTED.replace(hour=0, minute=0, second=0)
# The seed's calls of "today" are the 50 minutes before NOW, and the tests read
# them back in one day's bucket: in the first hour of a UTC day, NOW is the last
# second of the day before, so that they all fall on one day (and are still
# less than two hours old, as the latency tests want them).
_IN_FIRST_HOUR = _STARTED.hour == 0
NOW = _MIDNIGHT - dt.timedelta(seconds=1) if _IN_FIRST_HOUR else _STARTED
YESTERDAY = NOW - dt.timedelta(days=1)

FIRST = chat(("system", "Be brief."), ("user", "How do I reset my password?"))
SECOND = chat(
    ("system", "Be brief."),
    ("user", "How do I reset my password?"),
    ("assistant", "Use the sign-in page."),
    ("user", "And where is my order?"),
)


def reply(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


def tool_call(name: str, arguments: str) -> dict[str, Any]:
    call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}


#: (client, session, created_at, request, response fields or None)
SEED: list[tuple[tuple[ObjectId, str], str, dt.datetime, Any, dict[str, Any] | None]] = [
    (
        BOT,
        "alpha",
        NOW - dt.timedelta(minutes=50),
        FIRST,
        {
            "status": 200,
            "model": "gpt-4o",
            "body": reply("Use the sign-in page."),
            "usage": {"input_tokens": 12, "output_tokens": 3},
            "latency_ms": 412.3,
        },
    ),
    (
        BOT,
        "alpha",
        NOW - dt.timedelta(minutes=40),
        SECOND,
        {
            "status": 200,
            "model": "gpt-4o",
            "body": tool_call("get_order", '{"id": 5}'),
            "usage": {"input_tokens": 40, "output_tokens": None},
            "stream": True,
            "ttft_ms": 80.0,
            "latency_ms": 950.0,
        },
    ),
    (
        BOT,
        "alpha",
        NOW - dt.timedelta(minutes=30),
        chat(("user", "Hello?")),
        {"error": "upstream unreachable: connection refused", "latency_ms": 4.5},
    ),
    (
        BOT,
        "alpha",
        NOW - dt.timedelta(minutes=20),
        chat(("user", "Again?")),
        {
            "status": 429,
            "model": "gpt-4o",
            "body": {"error": {"message": "Rate limit reached", "type": "requests"}},
            "latency_ms": 60.0,
        },
    ),
    (CODER, "beta", NOW - dt.timedelta(minutes=10), {"prompt": "def f(): ..."}, None),
    (
        CODER,
        "beta",
        YESTERDAY,
        chat(("user", "Write a test")),
        {
            "status": 200,
            "model": "claude-3-5-sonnet",
            "body": {"type": "message", "content": [{"type": "text", "text": "Here it is."}]},
            "usage": {"input_tokens": 100, "output_tokens": 250},
            "stream": True,
            "ttft_ms": 300.0,
            "latency_ms": 2400.0,
        },
    ),
]


@pytest.fixture
def seeded(cli, tmp_path):
    """Import the requests, then give each its response as the library stores it."""
    ids = [ObjectId() for _ in SEED]
    records = [
        export_record(
            created_at=when, client=who, session_key=key, request=payload, record_id=record_id
        )
        for record_id, (who, key, when, payload, _) in zip(ids, SEED, strict=True)
    ]
    cli("import", str(write_jsonl(tmp_path / "seed.jsonl", records)))
    for record_id, (*_, fields) in zip(ids, SEED, strict=True):
        stored = None if fields is None else response_document(LLMResponse(**fields))
        cli.requests.update_one({"_id": record_id}, {"$set": {"response": stored}})
    return ids


def responses() -> list[dict[str, Any]]:
    return [fields for *_, fields in SEED if fields is not None]


def nearest(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


# -- show ---------------------------------------------------------------------------


def test_show_prints_each_response_under_its_request(cli, seeded):
    lines = cli("show", "alpha").stdout.splitlines()
    assert "support-bot" in lines[0] and "gpt-4o" in lines[0]
    assert lines[1].split() == ["system", "Be", "brief."]
    assert "How do I reset my password?" in lines[2]
    first = SEED[0][4]
    assert first is not None
    assert lines[3].strip().split("  ") == [
        "← 200",
        "gpt-4o",
        f"{first['latency_ms']:.0f} ms",
        "12 in / 3 out tokens",
    ]
    assert lines[4] == "  assistant Use the sign-in page."
    # The second call resends the answer just shown: only the new question is new.
    assert "(+1 after 3 earlier messages)" in lines[5]
    assert "And where is my order?" in lines[6]
    assert lines[7] == ("  ← 200  gpt-4o  950 ms  first byte 80 ms  streamed  40 in / ? out tokens")
    assert lines[8] == '  tool call get_order({"id": 5})'
    # A call that never reached the provider, then one it refused.
    assert lines[10] == "  user      Hello?"
    assert lines[11] == "  ← 4.5 ms  no usage reported"
    assert lines[12] == "  error     upstream unreachable: connection refused"
    assert lines[15] == "  ← 429  gpt-4o  60 ms  no usage reported"
    assert lines[16] == "  error     Rate limit reached"
    assert len(lines) == 17


def test_show_an_anthropic_answer_and_a_request_alone(cli, seeded):
    lines = cli("show", "beta").stdout.splitlines()
    assert lines[2] == (
        "  ← 200  claude-3-5-sonnet  2,400 ms  first byte 300 ms  streamed  100 in / 250 out tokens"
    )
    assert lines[3] == "  assistant Here it is."
    # The request without a response is shown as before, with nothing under it.
    assert lines[4].startswith("20") and lines[5:] == ["  {", '    "prompt": "def f(): ..."', "  }"]


def test_show_json_carries_the_response(cli, seeded):
    records = cli.json("show", "alpha")
    assert [r["response"]["status"] for r in records] == [200, 200, None, 429]
    first = records[0]["response"]
    assert (
        first["usage"]["input_tokens"] == 12 and first["usage"]["cache_read_input_tokens"] is None
    )
    assert first["body"] == reply("Use the sign-in page.")
    assert first["completed_at"].endswith("Z")
    beta = cli.json("show", "beta")
    assert beta[1]["response"] is None  # the request recorded alone


# -- stats --measure --------------------------------------------------------------------


def test_stats_measures_tokens(cli, seeded):
    today, yesterday = NOW.date().isoformat(), YESTERDAY.date().isoformat()

    def by_day(field: str) -> dict[str, int | None]:
        sums: dict[str, int | None] = {}
        for _, _, when, _, fields in SEED:
            count = ((fields or {}).get("usage") or {}).get(field)
            day = when.date().isoformat()
            sums.setdefault(day, None)
            if count is not None:
                sums[day] = (sums[day] or 0) + count
        return sums

    inputs, outputs = by_day("input_tokens"), by_day("output_tokens")
    # The days end with NOW's, even when the clock has passed midnight since.
    day_after = (_MIDNIGHT if _IN_FIRST_HOUR else _MIDNIGHT + dt.timedelta(days=1)).isoformat()
    until = ("--until", day_after)
    rows = {b["start"][:10]: b for b in cli.json("stats", "--measure", "input_tokens", *until)}
    assert rows[today]["input_tokens"] == inputs[today] == 52
    assert rows[yesterday]["input_tokens"] == inputs[yesterday]
    before = (NOW - dt.timedelta(days=3)).date().isoformat()
    assert rows[before]["input_tokens"] is None  # nothing reported that day: not 0
    both = {b["start"][:10]: b for b in cli.json("stats", "--measure", "tokens", *until)}
    reported = {d: (inputs[d] or 0) + (outputs[d] or 0) for d in (yesterday, today)}
    assert both[today] == {
        "start": f"{today}T00:00:00.000Z",
        "tokens": reported[today],
        "input_tokens": inputs[today],
        "output_tokens": outputs[today],
    }
    text = cli("stats", "--measure", "tokens", *until).stdout
    total_in = sum(v for v in inputs.values() if v is not None)
    total_out = sum(v for v in outputs.values() if v is not None)
    assert (
        f"tokens (input + output) per day (time zone UTC): {total_in + total_out:,} in all "
        f"({total_in:,} in, {total_out:,} out)"
    ) in text
    # Days with nothing reported show "-", not a zero.
    cells = [line.split("│") for line in text.splitlines()[3:]]
    assert [c[1].strip() for c in cells[-2:]] == [f"{reported[d]:,}" for d in (yesterday, today)]
    assert {c[1].strip() for c in cells[:-2]} == {"-"}
    out = cli("stats", "--measure", "output_tokens", "--client", "support-bot").stdout
    assert "output tokens per day (client support-bot, time zone UTC): 3 in all" in out
    requests = cli.json("stats")
    assert sum(b["count"] for b in requests) == len(SEED)


def test_stats_refuses_an_unknown_measure(cli):
    result = cli("stats", "--measure", "dollars", ok=False)
    assert result.exit_code == 2 and "Invalid value for '--measure'" in result.stderr


# -- latency ------------------------------------------------------------------------------


def test_latency_by_model(cli, seeded):
    rows = cli.json("latency")
    by_model: dict[Any, list[dict[str, Any]]] = {}
    for fields in responses():
        by_model.setdefault(fields.get("model"), []).append(fields)
    assert {r["model"] for r in rows} == set(by_model)
    for row in rows:
        mine = by_model[row["model"]]
        latencies = [f["latency_ms"] for f in mine]
        assert row["latency_ms"] == {
            "count": len(latencies),
            "p50": nearest(latencies, 50),
            "p95": nearest(latencies, 95),
            "p99": nearest(latencies, 99),
            "max": max(latencies),
        }
        ttfts = [f["ttft_ms"] for f in mine if f.get("ttft_ms") is not None]
        assert row["ttft_ms"]["count"] == len(ttfts)
    assert rows[0]["model"] == "gpt-4o"  # the most calls first
    text = cli("latency").stdout
    assert "latency per model, calls in the last 7d (nearest-rank percentiles)" in text
    table = {
        c[0].strip(): [x.strip() for x in c[1:]]
        for c in (ln.split("│") for ln in text.splitlines()[3:])
    }
    assert table["gpt-4o"][:5] == ["3", "412 ms", "950 ms", "950 ms", "950 ms"]
    assert table["(no model)"] == ["1", "4.5 ms", "4.5 ms", "4.5 ms", "4.5 ms", "0", "-", "-"]


def test_latency_by_client_and_window(cli, seeded):
    rows = {r["client"]: r for r in cli.json("latency", "--by", "client")}
    assert rows["support-bot"]["latency_ms"]["count"] == 4
    assert rows["support-bot"]["llm_client_id"] == str(BOT[0])
    assert rows["coder"]["latency_ms"]["max"] == 2400.0
    recent = cli.json("latency", "--by", "client", "--since", "2h")
    assert [r["client"] for r in recent] == ["support-bot"]
    mine = cli.json("latency", "--client", "coder", "--since", "3d")
    assert [r["model"] for r in mine] == ["claude-3-5-sonnet"]
    assert "no calls with a response" in cli("latency", "--since", "1m").stdout


def test_latency_refuses_bad_input(cli):
    assert cli("latency", "--by", "day", ok=False).exit_code == 2
    bad = cli("latency", "--since", "1d", "--until", "2d", ok=False)
    assert bad.exit_code == 1 and "must be before --until" in bad.stderr
    unknown = cli("latency", "--client", "nobody", ok=False)
    assert unknown.exit_code == 1 and "nobody" in unknown.stderr


def test_clients_json_carries_tokens_and_errors(cli, seeded):
    rows = {r["name"]: r for r in cli.json("clients")}
    for who in (BOT, CODER):
        mine = [f for c, *_, f in SEED if c == who and f is not None]
        reported = [f["usage"]["input_tokens"] for f in mine if f.get("usage")]
        assert rows[who[1]]["input_tokens"] == (sum(reported) if reported else None)
        failed = [f for f in mine if f.get("error") or (f.get("status") or 0) >= 400]
        assert rows[who[1]]["errors"] == len(failed)
    assert rows["support-bot"]["errors"] == 2 and rows["coder"]["output_tokens"] == 250
