"""``llmreq demo``: through the recorder, on a server and on the embedded default store."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmreq_mongo import LLMClient
from llmreq_mongo._cli._demo import next_session
from llmreq_mongo._cli._demo_script import PERSONAS
from llmreq_mongo._cli._demo_talk import DemoSession


def _texts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of a demo request's messages, whichever API it speaks."""
    request = doc["request"]
    if "input" in request:  # the Responses API: one document at a time
        return [("system", request["instructions"]), ("user", request["input"])]
    out = [("system", request["system"])] if "system" in request else []
    for m in request["messages"]:
        content = m["content"]
        if isinstance(content, list):  # Anthropic blocks: text, tool_use, tool_result
            content = " ".join(b.get("text") or b["type"] for b in content)
        out.append((m["role"], content or "tool_calls"))
    return out


def _answer_text(body: dict[str, Any]) -> str | None:
    """The assistant's text in a response body (chat, Responses API or Messages)."""
    if "choices" in body:
        return body["choices"][0]["message"]["content"]
    if "output" in body:
        return body["output"][0]["content"][0]["text"]
    texts = [b["text"] for b in body["content"] if b["type"] == "text"]
    return texts[0] if texts else None


def _tool_code(body: dict[str, Any]) -> str:
    """The code of the ``run_python`` call in a response body (chat or Messages)."""
    if "choices" in body:
        (call,) = body["choices"][0]["message"]["tool_calls"]
        assert call["function"]["name"] == "run_python"
        return json.loads(call["function"]["arguments"])["code"]
    (use,) = [b for b in body["content"] if b["type"] == "tool_use"]
    assert use["name"] == "run_python"
    return use["input"]["code"]


def test_demo_records_through_the_recorder(cli):
    result = cli.json("demo", "--requests", "60", "--sessions", "6")
    assert result["recorded"] == 60 and result["written"] == 60
    assert len(result["sessions"]) == 6
    assert sum(s["requests"] for s in result["sessions"]) == 60
    assert {u["llm_client"] for u in result["usage"]} == {
        "support-bot",
        "code-assistant",
        "summarizer",
    }
    assert cli.requests.count_documents({}) == 60
    # Realistic chat payloads: each request resends the conversation so far.
    doc = cli.requests.find_one({"request.messages.3": {"$exists": True}, "request.system": None})
    messages = doc["request"]["messages"]
    roles = [m["role"] for m in messages]
    # The demo's data is random: after an assistant turn that called a tool comes
    # the tool's result, after any other the user's next question.
    after = "tool" if messages[2].get("tool_calls") else "user"
    assert roles[:4] == ["system", "user", "assistant", after]
    assert sum(result["responses"].values()) == 60

    text = cli("demo", "--requests", "30", "--sessions", "12").stdout
    assert text.startswith("recorded 30 requests in 12 sessions through the recorder")
    assert "\nresponses: " in text and " answered, " in text
    assert "the 10 most recent of 12" in text
    assert "requests per client (last 7 days)" in text and "█" in text
    assert cli.requests.count_documents({}) == 90  # a second run adds to the store

    # Fewer requests than sessions: only the sessions that made a call are counted.
    few = cli("demo", "--requests", "5").stdout
    assert few.startswith("recorded 5 requests in 5 sessions through the recorder"), few


def test_demo_answers_fit_their_questions(cli):
    cli.json("demo", "--requests", "150", "--sessions", "15")
    answer_to = {e.question: e.answer for persona in PERSONAS for e in persona.exchanges}
    tool_call = {e.question: e.tool for persona in PERSONAS for e in persona.exchanges if e.tool}
    checked = answered = tools = 0
    for doc in cli.requests.find():
        messages = _texts(doc)
        asked = [text for role, text in messages if role == "user" and text in answer_to][-1]
        # Every answer in the conversation so far is the one written for its question,
        # after the model's call of the tool when the question needs one.
        current: str | None = None
        for role, text in messages[1:]:
            if role == "user" and text in answer_to:
                current = text
            elif role == "assistant":
                if text == "tool_calls" or text.endswith("tool_use"):
                    assert current in tool_call, current
                else:
                    assert current is not None and text == answer_to[current], current
                    checked += 1
        # And so is the response, when there is one.
        response = doc["response"]
        if response["status"] == 200 and response["error"] is None:
            body = response["body"]
            reply = _answer_text(body)
            if messages[-1][0] == "user" and messages[-1][1] == asked and asked in tool_call:
                tools += 1
                assert _tool_code(body) == tool_call[asked][0]  # the model runs the code first
                assert response["finish_reasons"] in (["tool_calls"], ["tool_use"])
            else:
                answered += 1
                assert reply == answer_to[asked], asked
                assert response["finish_reasons"] in (["stop"], ["end_turn"], ["completed"])
    assert checked > 50 and answered > 100 and tools > 0


def test_demo_records_realistic_responses(cli):
    result = cli.json("demo", "--requests", "160", "--sessions", "16")
    docs = list(cli.requests.find())
    responses = [d["response"] for d in docs]
    assert all(r is not None and r["latency_ms"] > 0 for r in responses)
    # Each API's body, each with the model the provider names.
    served = {r["model"] for r in responses if r["status"] == 200}
    assert {"gpt-4o-mini-2024-07-18", "claude-sonnet-4-20250514", "gpt-4.1-2025-04-14"} <= served
    kinds = {
        ("chat" if "choices" in r["body"] else "responses" if "output" in r["body"] else "messages")
        for r in responses
        if r["status"] == 200 and r["body"]
    }
    assert kinds == {"chat", "responses", "messages"}
    # Streams carry a time to the first token; other calls do not.
    streamed = [r for r in responses if r["stream"]]
    assert streamed and all(0 < r["ttft_ms"] < r["latency_ms"] for r in streamed)
    assert all(r["ttft_ms"] is None for r in responses if not r["stream"])
    # Usage is reported except by a chat stream that did not ask for it.
    for d in docs:
        r, request = d["response"], d["request"]
        bare_stream = (
            request.get("stream") and "stream_options" not in request and "system" not in request
        )
        if r["status"] == 200 and r["error"] is None:
            if bare_stream:
                assert r["usage"] is None
            else:
                usage = r["usage"]
                assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert any(r["usage"] is None for r in responses if r["status"] == 200)
    # A few failures of every kind, each with what went wrong.
    statuses = [r["status"] for r in responses]
    assert statuses.count(429) >= 1 and statuses.count(500) >= 1
    assert all(r["error"] for r in responses if r["status"] != 200)
    unreachable = [r for r in responses if r["status"] is None]
    assert unreachable and all(r["body"] is None and r["usage"] is None for r in unreachable)
    cut = [r for r in responses if r["status"] == 200 and r["error"]]
    assert cut and all(r["stream"] and "the stream ended before" in r["error"] for r in cut)
    assert result["responses"]["429"] == statuses.count(429)
    # A failed call is sent again, unchanged, a few seconds later.
    for d in docs:
        if d["response"]["error"]:
            again = cli.requests.find_one(
                {"session_key": d["session_key"], "created_at": {"$gt": d["created_at"]}},
                sort=[("created_at", 1)],
            )
            if again is not None:
                assert again["request"] == d["request"]
                assert again["created_at"] - d["created_at"] < dt.timedelta(seconds=5)


def test_demo_spreads_its_sessions_over_the_last_days(cli):
    result = cli.json("demo", "--requests", "120", "--sessions", "20")
    now = dt.datetime.now(dt.timezone.utc)
    docs = list(cli.requests.find())
    times = [d["created_at"] for d in docs]
    assert all(now - dt.timedelta(days=7, minutes=1) <= t <= now for t in times)
    assert max(times) - min(times) > dt.timedelta(days=1)
    assert len({t.date() for t in times}) >= 3
    assert all(d["updated_at"] == d["created_at"] for d in docs)
    # Within a session, the turns keep their order: a longer conversation is later
    # (a retry resends the same one).
    for key in {d["session_key"] for d in docs}:
        turns = sorted((d for d in docs if d["session_key"] == key), key=lambda d: d["created_at"])
        if "messages" in turns[0]["request"]:
            lengths = [len(d["request"]["messages"]) for d in turns]
            retries = sum(1 for d in turns[:-1] if d["response"]["error"])
            assert lengths == sorted(lengths) and len(set(lengths)) >= len(lengths) - retries
        assert turns[-1]["created_at"] - turns[0]["created_at"] < dt.timedelta(hours=2)
    # The run's own report reads them back.
    assert len(result["sessions"]) == 20
    assert sum(s["requests"] for s in result["sessions"]) == 120
    assert sum(b["count"] for b in cli.json("stats", "--since", "8d")) == 120


def _llmreq(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMREQ_MONGODB_URI", "MONGODB_URI")}
    return subprocess.run(
        [sys.executable, "-m", "llmreq_mongo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_readme_first_command_in_an_empty_directory(tmp_path):
    """``llmreq demo`` with no URI: the embedded engine, persistent in ./.llmreq-data."""
    first = _llmreq(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("recorded 240 requests in 40 sessions through the recorder")
    assert (tmp_path / ".llmreq-data").is_dir()
    # The store persists: a second command (a new engine process) sees it all.
    clients = _llmreq(tmp_path, "clients", "--json")
    assert clients.returncode == 0, clients.stderr
    rows = json.loads(clients.stdout)
    assert sum(r["requests"] for r in rows) == 240
    assert sum(r["sessions"] for r in rows) == 40


def test_a_waiting_cut_goes_to_a_session_that_streams() -> None:
    rng = random.Random(7)
    talks = [(LLMClient.model_construct(name="c"), DemoSession(i, rng)) for i in range(16)]
    assert any(talk.can_be_cut() for _, talk in talks)
    assert any(not talk.can_be_cut() for _, talk in talks)
    # Each session in turn first, whatever is waiting.
    assert [next_session(i, talks, ["cut"], rng) for i in range(16)] == talks
    for i in range(16, 216):
        _, talk = next_session(i, talks, ["rate_limit", "cut"], rng)
        assert talk.can_be_cut()
    # With no cut waiting, any session: the ones that do not stream too.
    picked = {id(next_session(i, talks, ["rate_limit"], rng)[1]) for i in range(16, 416)}
    assert len(picked) == len(talks)


def test_a_reader_that_goes_away_ends_the_demo_as_a_closed_pipe(tmp_path):
    """``llmreq demo | head -1``: no traceback, no error line, the shell's status for SIGPIPE."""
    env = {k: v for k, v in os.environ.items() if k not in ("LLMREQ_MONGODB_URI", "MONGODB_URI")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "llmreq_mongo", "demo", "--requests", "50", "--sessions", "5"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert demo.stdout is not None and demo.stderr is not None
    with demo.stderr:
        # Closed before the demo writes a line: its first write meets the closed
        # pipe, whatever the machine's pace (head closes after its line).
        demo.stdout.close()
        errors = demo.stderr.read().decode()
        assert demo.wait(timeout=120) == 141, errors
    assert "Traceback" not in errors and "error" not in errors.lower(), errors
