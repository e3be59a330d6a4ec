"""A chat-completions-shaped API that records every request it gets with llmreq-mongo.

Run it on the embedded engine (no MongoDB needed; ``pip install "llmreq-mongo[embedded,fastapi]"
uvicorn``)::

    EXAMPLE_API_KEY=s3cret uvicorn examples.fastapi_app:app

or against MongoDB, by setting ``LLMREQ_MONGODB_URI`` (and optionally ``LLMREQ_DATABASE``).
Then::

    curl -s localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
        -H 'x-session-key: demo' \\
        -d '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}'
    curl -s localhost:8000/llmreq/sessions -H 'x-api-key: s3cret'
    curl -s localhost:8000/llmreq/sessions/demo/requests -H 'x-api-key: s3cret'

The completion is canned: the point is the recording. The middleware records the request
body before the endpoint runs, with the session key from the ``x-session-key`` header, the
``session_key`` cookie, the body's ``session_key`` or the ``session_key`` query parameter;
``"stream": true`` answers with server-sent events, which pass through the middleware
untouched. The history API under ``/llmreq`` needs the ``x-api-key`` header to match
``EXAMPLE_API_KEY``; each listed session carries its ``requests_url``, with the key
percent-encoded (a key may hold ``/``, ``%``, spaces or any Unicode).

When MongoDB does not answer, the app fails to start within 10 s (``timeout`` of
``LLMReqLifespan``) with one line naming the address, and while it is down the history
API answers 503 within 5 s (``timeout`` of ``history_router``); the chat endpoint keeps
answering, its records waiting in the recorder.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from llmreq_mongo.integrations.asgi import LLMRequestLogger
from llmreq_mongo.integrations.fastapi import LLMReqLifespan, history_router

__all__ = ["app"]

CHAT_PATH = "/v1/chat/completions"


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[Any] | None = None


class ChatRequest(BaseModel):
    """The part of a chat-completions request this example reads."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def require_api_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
    """Let a request read the history only with the key in ``EXAMPLE_API_KEY``."""
    expected = os.environ.get("EXAMPLE_API_KEY")
    if not expected:
        raise HTTPException(503, "set EXAMPLE_API_KEY to read the request history")
    if x_api_key is None or not secrets.compare_digest(x_api_key, expected):
        raise HTTPException(401, "missing or wrong x-api-key header")


llmreq = LLMReqLifespan(
    # With no LLMREQ_MONGODB_URI, run the embedded engine on a temporary store.
    embedded=True,
    database=os.environ.get("LLMREQ_DATABASE", "llmreq"),
    llm_client="example-chat",
    timeout=10,  # seconds MongoDB has to answer at start-up
)
app = FastAPI(title="llmreq-mongo example: chat completions", lifespan=llmreq)
app.add_middleware(
    LLMRequestLogger,
    recorder=llmreq.current_recorder,
    llm_client=llmreq.current_client,
    paths=[CHAT_PATH],
    # Each record is queued as its request arrives, so the handler knows its id
    # (x-llmreq-record-id); "response", the default, records the answer too.
    capture="request",
)
app.include_router(
    # timeout: seconds each history request gives MongoDB before it answers 503
    history_router(dependencies=[Depends(require_api_key)], timeout=5),
    prefix="/llmreq",
)


def _reply(chat: ChatRequest) -> str:
    last = chat.messages[-1].content
    text = last if isinstance(last, str) else "your message"
    return f"You said: {text[:200]}"


@app.post(CHAT_PATH, response_model=None)
async def chat_completions(
    chat: ChatRequest, request: Request, response: Response
) -> dict[str, Any] | StreamingResponse:
    """Answer like a chat-completions API, with a canned completion.

    The ``x-llmreq-record-id`` response header carries the id of the record the
    middleware queued for this request.
    """
    record_id = str(getattr(request.state, "llmreq_record_id", "") or "")
    completion_id = f"chatcmpl-{record_id or secrets.token_hex(12)}"
    created = int(time.time())
    reply = _reply(chat)
    headers = {"x-llmreq-record-id": record_id}
    if chat.stream:

        async def events() -> AsyncIterator[str]:
            for word in reply.split(" "):
                chunk = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": chat.model,
                    "choices": [{"index": 0, "delta": {"content": word + " "}}],
                }
                yield f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
    response.headers.update(headers)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}
