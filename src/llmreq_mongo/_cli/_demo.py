"""``llmreq demo``: fill the store with example requests and show them."""

from __future__ import annotations

import random
from typing import Annotated, Any

import typer

from .._connection import Handle
from .._documents import LLMClient, LLMClientRequest
from ._app import app, run, settings_of

__all__ = ["demo"]

_QUESTIONS = [
    "How do I reset my password?",
    "Summarise this ticket in two sentences.",
    "Translate 'good morning' into French.",
    "What is the refund policy for annual plans?",
    "Write a haiku about MongoDB.",
]


def _chat_payload(rng: random.Random) -> dict[str, Any]:
    return {
        "model": rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"]),
        "temperature": round(rng.uniform(0, 1), 2),
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant."},
            {"role": "user", "content": rng.choice(_QUESTIONS)},
        ],
    }


@app.command()
def demo(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option(min=1, max=1_000_000, help="Requests to record.")] = 9,
    sessions: Annotated[int, typer.Option(min=1, max=100_000, help="Sessions to spread them over.")] = 3,
) -> None:
    """Record example chat requests in a few sessions and print each session's history."""
    settings = settings_of(ctx)
    console = settings.console

    async def work(handle: Handle) -> None:
        rng = random.Random()
        client, _ = await LLMClient.objects.get_or_create(
            name="demo-assistant", defaults={"description": "created by llmreq demo"}
        )
        keys = [f"demo-session-{i + 1}" for i in range(sessions)]
        for i in range(requests):
            await LLMClientRequest.objects.create(
                llm_client=client,
                request=_chat_payload(rng),
                session_key=keys[i % sessions],
            )
        for key in keys:
            history = await LLMClientRequest.objects.filter(session_key=key).order_by(
                "created_at", "id"
            ).to_list()
            console.print(f"[bold]{key}[/bold] ({len(history)} requests)")
            for req in history:
                payload = req.request if isinstance(req.request, dict) else {}
                question = payload.get("messages", [{}])[-1].get("content", "")
                when = req.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
                console.print(f"  {when}  {payload.get('model', '?'):<16} {question}")

    run(settings, work)
