"""LLMRequestLogger on responses sent compressed: read decoded, passed on as sent, bounded."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from capture_upstream import TEXT_PIECES, chat_json, chat_stream_chunks
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_asgi_response import (
    CHAT,
    logger_for,
    only_record,
    request_messages,
    scope_for,
    sending,
    stored,
    streamed_text,
)

from llmreq_mongo import LLMClient, Recorder
from llmreq_mongo.integrations._decoding import EXPANSION
from llmreq_mongo.integrations.asgi import ASGIApp, Message


async def call(logged: ASGIApp) -> list[Message]:
    got: list[Message] = []

    async def send(message: Message) -> None:
        got.append(message)

    await logged(scope_for(), request_messages({"model": "gpt-4o"}), send)
    return got


def body_of(messages: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


async def test_starlettes_gzip_middleware_inside_the_logger(
    recorder: Recorder, client: LLMClient
) -> None:
    answer = chat_json("text")

    async def chat(request: Request) -> JSONResponse:
        return JSONResponse(answer)

    inner = GZipMiddleware(Starlette(routes=[Route(CHAT, chat, methods=["POST"])]), minimum_size=10)
    scope = {**scope_for(headers=[(b"accept-encoding", b"gzip")]), "state": {}}
    got: list[Message] = []

    async def send(message: Message) -> None:
        got.append(message)

    await logger_for(recorder, client, inner)(scope, request_messages({"model": "gpt-4o"}), send)
    sent = body_of(got)
    assert dict(got[0]["headers"])[b"content-encoding"] == b"gzip"
    assert json.loads(gzip.decompress(sent)) == answer  # the client got it compressed
    record = await only_record(recorder)
    assert record.response is not None and record.response.error is None
    assert record.response.body == answer
    assert record.response.usage is not None and record.response.usage.output_tokens is not None


async def test_a_compressed_stream_is_read_chunk_by_chunk(
    recorder: Recorder, client: LLMClient
) -> None:
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    events = chat_stream_chunks("answer", include_usage=True)
    chunks = [compressor.compress(e) + compressor.flush(zlib.Z_SYNC_FLUSH) for e in events]
    chunks.append(compressor.flush())
    headers = [(b"content-type", b"text/event-stream"), (b"content-encoding", b"gzip")]
    got = await call(logger_for(recorder, client, sending(headers, chunks)))
    assert [m["body"] for m in got[1:-1]] == chunks  # passed on as sent
    record = await only_record(recorder)
    assert record.response is not None and record.response.error is None
    assert record.response.stream and streamed_text(record) == "".join(TEXT_PIECES)
    assert record.response.usage is not None


async def test_deflate_with_and_without_its_zlib_header(
    recorder: Recorder, client: LLMClient
) -> None:
    answer = json.dumps(chat_json("text")).encode()
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    bodies = [zlib.compress(answer), raw.compress(answer) + raw.flush()]
    for body in bodies:
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"deflate")]
        await call(logger_for(recorder, client, sending(headers, [body[:50], body[50:]])))
    await recorder.flush()
    records = await stored()
    assert [r.response.body if r.response else None for r in records] == [
        chat_json("text"),
        chat_json("text"),
    ]


async def test_a_body_decompressing_past_the_bound_is_not_read(
    recorder: Recorder, client: LLMClient
) -> None:
    limit = 64 * 1024
    bomb = gzip.compress(b" " * (limit * EXPANSION + 1))  # about 260 bytes of gzip
    assert len(bomb) < 2_000
    headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
    logged = logger_for(recorder, client, sending(headers, [bomb]), max_response_bytes=limit)
    got = await call(logged)
    assert body_of(got) == bomb
    record = await only_record(recorder)
    assert record.response is not None and record.response.status == 200
    assert record.response.body is None
    assert record.response.error is not None
    assert f"more than {limit * EXPANSION:,} bytes" in record.response.error


@pytest.mark.parametrize(
    ("encoding", "body", "error"),
    [
        (b"br", b"\x1b\x03\x00", "encoded with 'br', which is not read here"),
        (b"gzip", b"not gzip at all", "could not be decoded"),
    ],
)
async def test_a_body_that_cannot_be_decoded_keeps_its_status_and_says_why(
    recorder: Recorder, client: LLMClient, encoding: bytes, body: bytes, error: str
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-encoding", encoding)]
    got = await call(logger_for(recorder, client, sending(headers, [body])))
    assert body_of(got) == body
    record = await only_record(recorder)
    assert record.response is not None and record.response.status == 200
    assert record.response.body is None and record.response.latency_ms >= 0
    assert record.response.error is not None and error in record.response.error
