"""``recorder.call(...)``: a call recorded once, with what came back, timed by the recorder."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from capture_upstream import CHAT_USAGE, TEXT, chat_stream_chunks

from llmreq_mongo import (
    Handle,
    InvalidInput,
    InvalidPayload,
    LLMClient,
    LLMClientRequest,
    LLMResponse,
    RecordedCall,
    Recorder,
    RecorderClosed,
    RecorderFull,
    TokenUsage,
    init,
)
from llmreq_mongo._time import now_ms
from llmreq_mongo.embedded import EmbeddedMongo

PAYLOAD = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def stored(record_id: Any) -> LLMClientRequest:
    await asyncio.sleep(0)
    return await LLMClientRequest.objects.get(pk=record_id)


async def test_a_bad_request_is_refused_when_the_call_starts(
    bot: LLMClient, recorder: Recorder
) -> None:
    bad: list[dict[str, Any]] = [
        {"llm_client": LLMClient(name="unsaved"), "request": {}},
        {"llm_client": bot, "request": {"x": float("nan")}},
        {"llm_client": bot, "request": {"b": b"bytes"}},
        {"llm_client": bot, "request": {}, "session_key": {"$ne": ""}},
        {"llm_client": bot, "request": {}, "is_aggregation": "yes"},
    ]
    for fields in bad:
        args = (fields["llm_client"], fields["request"])
        options = {k: v for k, v in fields.items() if k in ("session_key", "is_aggregation")}
        with pytest.raises(InvalidInput) as by_record:
            recorder.record(*args, **options)
        entered = False
        with pytest.raises(InvalidInput) as by_call:
            # The error comes from recorder.call(...) itself, before the block.
            async with recorder.call(*args, **options):
                entered = True
        assert not entered
        assert type(by_call.value) is type(by_record.value)
        assert str(by_call.value) == str(by_record.value)
    await recorder.flush()
    assert recorder.stats.accepted == 0
    assert await LLMClientRequest.objects.count() == 0


async def test_a_recorder_not_running_refuses_a_call(bot: LLMClient) -> None:
    recorder = Recorder()
    with pytest.raises(RecorderClosed, match="start it"):
        recorder.call(bot, PAYLOAD)
    async with recorder:
        pass
    with pytest.raises(RecorderClosed, match="stopped"):
        recorder.call(bot, PAYLOAD)


async def test_a_response_given_as_fields_is_stored_with_measured_timings(
    bot: LLMClient, recorder: Recorder
) -> None:
    before = now_ms()
    async with recorder.call(bot, PAYLOAD, session_key="s1") as call:
        assert isinstance(call, RecordedCall)
        assert before <= call.created_at
        await asyncio.sleep(0.02)
        call.first_token()
        await asyncio.sleep(0.03)
        call.first_token()  # only the first mark counts
        call.respond(status=200, body={"id": "c1"}, usage={"input_tokens": 3, "output_tokens": 5})
    await recorder.flush()
    doc = await stored(call.record_id)
    response = doc.response
    assert response is not None
    assert doc.request == PAYLOAD and doc.session_key == "s1"
    assert doc.created_at == call.created_at  # when the call started
    assert response.status == 200 and response.body == {"id": "c1"}
    assert response.usage == TokenUsage(input_tokens=3, output_tokens=5)
    assert response.error is None
    assert response.latency_ms >= 50  # the block's whole length, measured by the call
    assert response.ttft_ms is not None and 20 <= response.ttft_ms < response.latency_ms
    assert response.completed_at >= doc.created_at + dt.timedelta(milliseconds=50)


async def test_a_response_given_whole_keeps_its_own_timings(
    bot: LLMClient, recorder: Recorder
) -> None:
    given = LLMResponse(status=201, latency_ms=12.5, model="m")
    async with recorder.call(bot, PAYLOAD) as call:
        call.respond(given)
    from_dict = recorder.call(bot, PAYLOAD)
    async with from_dict:
        from_dict.respond({"status": 502, "error": "bad gateway"})
    await recorder.flush()
    first = (await stored(call.record_id)).response
    assert first is not None and (first.status, first.latency_ms, first.model) == (201, 12.5, "m")
    second = (await stored(from_dict.record_id)).response
    assert second is not None and (second.status, second.error) == (502, "bad gateway")
    assert second.latency_ms > 0  # not given: measured


async def test_a_bad_response_is_refused_on_the_callers_path(
    bot: LLMClient, recorder: Recorder
) -> None:
    async with recorder.call(bot, PAYLOAD) as call:
        with pytest.raises(InvalidInput, match=r"response\.usage\.input_tokens"):
            call.respond(usage={"input_tokens": "3"})
        with pytest.raises(InvalidPayload, match=r"response\.body"):
            call.respond(body={"x": float("inf")})
        with pytest.raises(InvalidInput, match="not a field"):
            call.respond(colour="red")
        with pytest.raises(InvalidInput, match="not both"):
            call.respond({"status": 200}, status=201)
        with pytest.raises(InvalidInput, match="LLMResponse or a dict"):
            call.respond(["not", "a", "response"])  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="receive"):
            call.feed(b"{}")
        with pytest.raises(InvalidInput, match="status"):
            call.receive(status=99)
        call.respond(status=200)
        with pytest.raises(InvalidInput, match="already has a response"):
            call.respond(status=201)
        with pytest.raises(InvalidInput, match="already has a response"):
            call.receive(status=200)
    await recorder.flush()
    response = (await stored(call.record_id)).response
    assert response is not None and response.status == 200


async def test_raw_chunks_fed_to_the_call_are_assembled(bot: LLMClient, recorder: Recorder) -> None:
    async with recorder.call(bot, {**PAYLOAD, "stream": True}) as call:
        call.receive(status=200, content_type="text/event-stream", path="/v1/chat/completions")
        for chunk in chat_stream_chunks("answer", include_usage=True):
            call.feed(chunk)
    await recorder.flush()
    response = (await stored(call.record_id)).response
    assert response is not None and response.stream and response.status == 200
    assert response.body["choices"][0]["message"]["content"] == TEXT
    usage = CHAT_USAGE
    assert response.usage is not None
    assert response.usage.input_tokens == usage["prompt_tokens"]  # counted once
    assert response.usage.output_tokens == usage["completion_tokens"]
    assert response.ttft_ms is not None and response.ttft_ms <= response.latency_ms


async def test_a_block_that_raises_is_recorded_with_error_and_the_exception_goes_on(
    bot: LLMClient, recorder: Recorder
) -> None:
    boom = ValueError("the upstream said no")
    call = recorder.call(bot, PAYLOAD, session_key="raised")
    bare = recorder.call(bot, PAYLOAD)

    async def answers_then_raises() -> None:
        async with call:
            call.respond(status=200, body={"partial": True})
            raise boom

    async def raises() -> None:
        async with bare:
            raise KeyError("k")

    with pytest.raises(ValueError, match="said no") as caught:
        await answers_then_raises()
    assert caught.value is boom  # the same exception, unchanged
    with pytest.raises(KeyError):
        await raises()
    await recorder.flush()
    response = (await stored(call.record_id)).response
    assert response is not None
    assert response.error == "ValueError: the upstream said no"
    assert response.body == {"partial": True} and response.status == 200  # what it had
    bare_response = (await stored(bare.record_id)).response
    assert bare_response is not None and bare_response.error == "KeyError: 'k'"


async def test_a_cancelled_call_is_recorded_and_stays_cancelled(
    bot: LLMClient, recorder: Recorder
) -> None:
    calls: list[RecordedCall] = []

    async def waits() -> None:
        async with recorder.call(bot, PAYLOAD) as call:
            calls.append(call)
            call.first_token()
            await asyncio.sleep(60)

    task = asyncio.ensure_future(waits())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(KeyboardInterrupt):
        async with recorder.call(bot, PAYLOAD) as interrupted:
            raise KeyboardInterrupt
    await recorder.flush()
    response = (await stored(calls[0].record_id)).response
    assert response is not None and response.error == "the call was cancelled"
    assert response.stream and response.ttft_ms is not None
    other = (await stored(interrupted.record_id)).response
    assert other is not None and other.error == "the call was interrupted (KeyboardInterrupt)"


async def test_a_block_that_ends_without_a_response_records_its_timings(
    bot: LLMClient, recorder: Recorder
) -> None:
    async with recorder.call(bot, PAYLOAD) as call:
        await asyncio.sleep(0.01)
    await recorder.flush()
    response = (await stored(call.record_id)).response
    assert response is not None
    assert response.latency_ms >= 10 and response.ttft_ms is None and not response.stream
    assert (response.status, response.body, response.usage, response.error) == (
        None,
        None,
        None,
        None,
    )


async def test_before_record_runs_once_when_the_call_starts(bot: LLMClient) -> None:
    seen: list[Any] = []

    def redact(payload: Any) -> Any:
        seen.append(payload)
        return {**payload, "api_key": "***"}

    async with Recorder(before_record=redact, flush_interval=0.01) as recorder:
        async with recorder.call(bot, {"api_key": "sk-1"}) as call:
            assert len(seen) == 1
            call.respond(status=200)
        await recorder.flush()
    assert len(seen) == 1
    assert (await stored(call.record_id)).request == {"api_key": "***"}


async def test_finish_ends_a_call_without_a_block_exactly_once(
    bot: LLMClient, recorder: Recorder
) -> None:
    call = recorder.call(bot, PAYLOAD)
    assert not call.ended
    call.respond(status=200)
    await call.finish()
    assert call.ended
    await call.finish("too late")  # nothing more is recorded
    call.respond(status=500)  # ignored once ended
    await recorder.flush()
    assert recorder.stats.accepted == 1
    response = (await stored(call.record_id)).response
    assert response is not None and response.status == 200 and response.error is None


async def test_a_call_open_at_stop_is_recorded_once_by_stop(bot: LLMClient) -> None:
    recorder = Recorder(flush_interval=0.01)
    await recorder.start()
    call = recorder.call(bot, PAYLOAD, session_key="at-stop")
    call.first_token()
    await recorder.stop()
    assert call.ended
    call.respond(status=200)  # the record is already written: ignored
    await call.finish()
    docs = await LLMClientRequest.objects.filter(session_key="at-stop").to_list()
    assert [d.id for d in docs] == [call.record_id]
    response = docs[0].response
    assert response is not None
    assert response.error == "the recorder stopped before the call ended"
    assert response.status is None and response.ttft_ms is not None
    assert recorder.stats.written == 1


async def test_back_pressure_holds_and_a_call_waiting_for_room_at_stop_is_kept(
    bot: LLMClient,
) -> None:
    recorder = Recorder(max_batch=5, max_queue=5, on_full="block")
    await recorder.start()
    for n in range(5):
        recorder.record(bot, {"n": n}, session_key="full")
    call = recorder.call(bot, PAYLOAD, session_key="full")
    call.respond(status=200)
    waiting = asyncio.ensure_future(call.finish())
    await asyncio.sleep(0)
    assert not waiting.done()  # the queue is full: the end of the call waits for room
    await recorder.stop()
    await waiting
    docs = await LLMClientRequest.objects.filter(session_key="full").to_list()
    assert len(docs) == 6
    kept = [d for d in docs if d.id == call.record_id]
    assert len(kept) == 1 and kept[0].response is not None
    assert kept[0].response.status == 200 and kept[0].response.error is None


async def test_on_full_raise_and_drop_apply_to_a_call(bot: LLMClient) -> None:
    async with Recorder(max_batch=2, max_queue=2, on_full="raise", flush_interval=60) as rec:
        rec.record(bot, {"n": 0})
        rec.record(bot, {"n": 1})
        with pytest.raises(RecorderFull):
            async with rec.call(bot, PAYLOAD):
                pass
        # A block that raised keeps its own exception; the refusal is logged.
        with pytest.raises(ZeroDivisionError):
            async with rec.call(bot, PAYLOAD):
                _ = 1 / 0
    dropped: list[dict[str, Any]] = []
    async with Recorder(
        max_batch=2, max_queue=2, on_full="drop", on_drop=dropped.append, flush_interval=60
    ) as rec:
        rec.record(bot, {"n": 0})
        rec.record(bot, {"n": 1})
        async with rec.call(bot, PAYLOAD) as call:
            pass
        assert rec.stats.dropped == 1 and [d["_id"] for d in dropped] == [call.record_id]


async def test_a_request_and_body_too_large_together_keep_the_request(
    bot: LLMClient, recorder: Recorder
) -> None:
    big = "x" * (9 * 1024 * 1024)
    async with recorder.call(bot, {"prompt": big}) as call:
        call.respond(status=200, body={"text": big})
    await recorder.flush()
    doc = await stored(call.record_id)
    assert doc.request == {"prompt": big}
    assert doc.response is not None and doc.response.truncated and doc.response.body is None


# -- spill: a call ended while MongoDB is away is spilled, then replayed -------------


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedMongo]:
    async with EmbeddedMongo(tmp_path_factory.mktemp("call-outage"), process=True) as engine:
        yield engine


@pytest.fixture
async def outage_handle(engine: EmbeddedMongo) -> AsyncIterator[Handle]:
    await engine.start()
    name = f"llmreq_test_{uuid.uuid4().hex[:12]}"
    handle = await init(engine.uri, database=name)
    try:
        yield handle
    finally:
        await engine.start()
        await handle.client.drop_database(name)
        await handle.close()


async def test_a_call_ended_while_mongodb_is_away_is_spilled_then_replayed(
    engine: EmbeddedMongo, outage_handle: Handle, tmp_path: Path
) -> None:
    bot = await LLMClient.objects.create(name="outage-bot")
    spill = tmp_path / "calls.jsonl"
    recorder = Recorder(retry_deadline=0.3, stop_timeout=0.3, spill_path=spill)
    await recorder.start()
    call = recorder.call(bot, PAYLOAD, session_key="spilled")
    await engine.stop()
    async with call:
        call.respond(status=200, usage={"output_tokens": 7})
    await recorder.stop()
    assert recorder.stats.spilled == 1 and spill.exists()
    await engine.start()
    async with Recorder(spill_path=spill) as replayer:
        await replayer.flush()
        for _ in range(500):
            if not spill.exists():
                break
            await asyncio.sleep(0.01)
    docs = await LLMClientRequest.objects.filter(session_key="spilled").to_list()
    assert [d.id for d in docs] == [call.record_id]
    response = docs[0].response
    assert response is not None and response.usage == TokenUsage(output_tokens=7)
