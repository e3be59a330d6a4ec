"""One demo session: the calls a client makes, each with the response it gets.

A chat client resends the conversation so far plus the new user message; a
tool step adds the model's call and the tool's output before the model
answers. A call that fails (a 429, a 500, an upstream that cannot be reached,
a stream cut short) is sent again a few seconds later, unchanged, as SDKs
retry. A batch client (the summariser) sends each document on its own.

Each session is fixed by its index: its persona, its model, and whether it
streams (with or without the final usage chunk), so that even a short run
has every kind of call.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from dataclasses import dataclass
from typing import Any

from llmreq_mongo._capture import LLMResponse
from llmreq_mongo._time import now_ms

from ._demo_script import MODELS, PERSONAS, Exchange, Persona
from ._demo_wire import Fault, Reply, response_for, token_count

__all__ = ["DAYS", "Call", "DemoSession", "fault_plan"]

#: The sessions of a run are spread over this many days back from now.
DAYS = 7
#: The latest a session starts: hours before now, so its turns stay in the past.
_TAIL = dt.timedelta(hours=3)
#: How often each fault happens, per call.
_FAULT_RATES: tuple[tuple[Fault, float], ...] = (
    ("rate_limit", 0.02),
    ("server_error", 0.01),
    ("unreachable", 0.005),
    ("cut", 0.01),
)
_LEAD_IN = "Let me run it to check."

_CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "run_python",
        "description": "Run a Python snippet and return its output.",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    },
}
_MESSAGES_TOOL = {
    "name": "run_python",
    "description": "Run a Python snippet and return its output.",
    "input_schema": {
        "type": "object",
        "properties": {"code": {"type": "string"}},
        "required": ["code"],
    },
}


@dataclass(frozen=True)
class Call:
    """One call of a session: what was sent, when, and what came back."""

    payload: dict[str, Any]
    at: dt.datetime
    response: LLMResponse


def fault_plan(requests: int, rng: random.Random) -> dict[int, Fault]:
    """Which calls of a run fail, and how: each fault at its rate, and at least once.

    A cut needs a stream: a call planned to be cut that is not streamed
    passes it on to the next streamed call.
    """
    plan: dict[int, Fault] = {}
    for i in range(requests):
        roll = rng.random()
        for fault, rate in _FAULT_RATES:
            if roll < rate:
                plan[i] = fault
                break
            roll -= rate
    if requests >= 4 * len(_FAULT_RATES):
        free = [i for i in range(requests // 4, requests) if i not in plan]
        for fault, _ in _FAULT_RATES:
            if fault not in plan.values() and free:
                plan[free.pop(rng.randrange(len(free)))] = fault
    return plan


class DemoSession:
    """One session: a client, a model, the messages so far, and what comes next."""

    def __init__(self, index: int, rng: random.Random) -> None:
        self.persona: Persona = PERSONAS[index % len(PERSONAS)]
        # The n-th session of a persona: it picks the model and the streaming mode.
        nth = index // len(PERSONAS)
        self.key = secrets.token_hex(16)  # shaped like a Django session key
        self.model_name = self.persona.models[nth % len(self.persona.models)]
        self.model = MODELS[self.model_name]
        self.api = self.persona.api or self.model.api
        mode = ("json", "usage", "bare")[nth % 3] if self.persona.streams else "json"
        self.stream = mode != "json"
        # Anthropic always reports usage; a chat stream only when asked to.
        self.include_usage = mode == "usage" or self.api == "messages"
        self.system = self.persona.system
        self.messages: list[dict[str, Any]] = []
        self.exchange: Exchange | None = None
        #: The model's reply to the call being made, and the call to send again.
        self.reply: Reply | None = None
        self.failed: dict[str, Any] | None = None
        self.ids: list[Any] = []
        self.clock = now_ms() - dt.timedelta(
            seconds=rng.uniform(_TAIL.total_seconds(), dt.timedelta(days=DAYS).total_seconds())
        )

    def _time(self, rng: random.Random, *, retry: bool) -> dt.datetime:
        """The time of the next call: 20 s to 3 min after the last one, 1-4 s for a retry."""
        self.clock += dt.timedelta(seconds=rng.uniform(1, 4) if retry else rng.uniform(20, 180))
        return min(self.clock, now_ms())

    def next_call(self, rng: random.Random, fault: Fault | None) -> Call:
        """The session's next call, with ``fault`` if it is to fail (None: it is answered).

        A ``"cut"`` is for a session that streams (:meth:`can_be_cut`).
        """
        retry = self.failed is not None
        payload = self.failed if self.failed is not None else self._next_payload(rng)
        at = self._time(rng, retry=retry)
        assert self.reply is not None
        response = response_for(
            self.api,
            self.model,
            self.reply,
            input_tokens=self._input_tokens(payload),
            stream=self.stream,
            include_usage=self.include_usage,
            fault=fault,
            at=at,
            rng=rng,
        )
        self.failed = payload if fault is not None else None
        return Call(payload, at, response)

    def can_be_cut(self) -> bool:
        """Whether this session's calls are streamed (so one can be cut)."""
        return self.stream and self.api != "responses"

    # -- the next request ------------------------------------------------------------------

    def _next_payload(self, rng: random.Random) -> dict[str, Any]:
        if self.reply is not None and self.persona.single:
            self.messages = []
        elif self.reply is not None:
            self._answered(self.reply)
        if self.reply is not None and self.reply.tool is not None:
            assert self.exchange is not None
            self.reply = Reply(text=self.exchange.answer)
        else:
            self.exchange = self._question(rng)
            self.messages.append({"role": "user", "content": self.exchange.question})
            self.reply = self._first_reply(self.exchange, rng)
        return self._payload(rng)

    def _question(self, rng: random.Random) -> Exchange:
        asked = {m["content"] for m in self.messages if isinstance(m["content"], str)}
        fresh = [e for e in self.persona.exchanges if e.question not in asked]
        return rng.choice(fresh or list(self.persona.exchanges))

    def _first_reply(self, exchange: Exchange, rng: random.Random) -> Reply:
        if exchange.tool is None:
            return Reply(text=exchange.answer)
        prefix = "toolu_01" if self.api == "messages" else "call_"
        call_id = prefix + secrets.token_hex(12)
        lead = _LEAD_IN if self.api == "messages" else None
        return Reply(text=lead, tool=(call_id, exchange.tool[0]))

    def _answered(self, reply: Reply) -> None:
        """Add the model's reply (and the tool's output, for a tool call) to the messages."""
        if reply.tool is None:
            self.messages.append({"role": "assistant", "content": reply.text})
            return
        assert self.exchange is not None and self.exchange.tool is not None
        call_id, code = reply.tool
        output = self.exchange.tool[1]
        if self.api == "messages":
            use = {"type": "tool_use", "id": call_id, "name": "run_python", "input": {"code": code}}
            blocks = [{"type": "text", "text": reply.text}, use] if reply.text else [use]
            self.messages.append({"role": "assistant", "content": blocks})
            result = {"type": "tool_result", "tool_use_id": call_id, "content": output}
            self.messages.append({"role": "user", "content": [result]})
            return
        function = {"name": "run_python", "arguments": json.dumps({"code": code})}
        self.messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            }
        )
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": output})

    def _payload(self, rng: random.Random) -> dict[str, Any]:
        temperature = round(rng.uniform(0.0, 1.0), 2)
        limit = rng.choice([256, 512, 1024])
        messages = [dict(m) for m in self.messages]
        if self.api == "responses":
            return {
                "model": self.model_name,
                "instructions": self.system,
                "input": messages[-1]["content"],
                "temperature": temperature,
                "max_output_tokens": limit,
                "store": False,
            }
        if self.api == "messages":
            payload: dict[str, Any] = {
                "model": self.model_name,
                "max_tokens": limit,
                "system": self.system,
                "messages": messages,
                "temperature": temperature,
                "stream": self.stream,
            }
            if self.persona.tools:
                payload["tools"] = [_MESSAGES_TOOL]
            return payload
        payload = {
            "model": self.model_name,
            "messages": [{"role": "system", "content": self.system}, *messages],
            "temperature": temperature,
            "max_tokens": limit,
            "stream": self.stream,
        }
        if self.stream and self.include_usage:
            payload["stream_options"] = {"include_usage": True}
        if self.persona.tools:
            payload["tools"] = [_CHAT_TOOL]
        return payload

    def _input_tokens(self, payload: dict[str, Any]) -> int:
        text = json.dumps(
            [payload.get(k) for k in ("system", "instructions", "input", "messages")],
            ensure_ascii=False,
        )
        tools = 60 if "tools" in payload else 0
        return token_count(text, self.model) + tools
