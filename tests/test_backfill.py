"""Backfills: ``created_at``/``updated_at`` given to ``objects.create`` are stored as given."""

from __future__ import annotations

import datetime as dt

import pytest

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, Recorder
from llmreq_mongo._documents import request_document, validate_request

UTC = dt.timezone.utc
PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))
WHEN = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=PARIS_SUMMER)
WHEN_MS = dt.datetime(2024, 5, 1, 10, 30, 15, 123000, tzinfo=UTC)


async def test_create_keeps_an_aware_created_at(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(llm_client=client, request={}, created_at=WHEN)
    assert (req.created_at, req.updated_at) == (WHEN_MS, WHEN_MS)
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": req.id})
    assert raw is not None
    assert raw["created_at"].replace(tzinfo=UTC) == WHEN_MS
    assert raw["updated_at"].replace(tzinfo=UTC) == WHEN_MS
    got = await LLMClientRequest.objects.get(pk=req.id)
    assert (got.created_at, got.updated_at) == (WHEN_MS, WHEN_MS)
    # The backfill is found by the windows every report uses.
    found = LLMClientRequest.objects.filter(created_at__lt=dt.datetime(2025, 1, 1, tzinfo=UTC))
    assert [r.id for r in await found.to_list()] == [req.id]


async def test_create_keeps_updated_at_when_given(client: LLMClient) -> None:
    later = WHEN + dt.timedelta(days=1)
    req = await LLMClientRequest.objects.create(
        llm_client=client, request={}, created_at=WHEN, updated_at=later
    )
    got = await LLMClientRequest.objects.get(pk=req.id)
    assert got.created_at == WHEN_MS
    assert got.updated_at == WHEN_MS + dt.timedelta(days=1)


async def test_other_documents_keep_it_too(client: LLMClient) -> None:
    made = await LLMClient.objects.create(name="old-bot", created_at=WHEN)
    got = await LLMClient.objects.get(pk=made.id)
    assert (got.created_at, got.updated_at) == (WHEN_MS, WHEN_MS)


@pytest.mark.parametrize(
    ("times", "match"),
    [
        ({"created_at": dt.datetime(2024, 5, 1)}, "naive"),
        ({"created_at": "2024-05-01T00:00:00Z"}, "timezone-aware"),
        ({"updated_at": WHEN}, "without created_at"),
        ({"created_at": WHEN, "updated_at": WHEN - dt.timedelta(seconds=1)}, "before"),
        ({"created_at": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=3)))}, "range"),
    ],
    ids=["naive", "string", "updated-alone", "updated-first", "out-of-range"],
)
async def test_bad_times_are_refused_and_nothing_is_written(
    client: LLMClient, times: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        await LLMClientRequest.objects.create(llm_client=client, request={}, **times)
    with pytest.raises(InvalidInput, match=match):
        await LLMClient.objects.create(name="other", **times)
    assert await LLMClientRequest.objects.count() == 0
    assert await LLMClient.objects.count() == 1


async def test_the_shared_write_path_takes_the_same_times(client: LLMClient) -> None:
    # What the recorder and the importer call.
    checked = validate_request(
        client, {"q": 1}, "s", False, client_model=LLMClient, created_at=WHEN
    )
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    doc = request_document(checked, record_id=client.id, now=now)  # type: ignore[arg-type]
    assert (doc["created_at"], doc["updated_at"]) == (WHEN_MS, WHEN_MS)
    stamped = validate_request(client, {"q": 1}, "s", False, client_model=LLMClient)
    doc = request_document(stamped, record_id=client.id, now=now)  # type: ignore[arg-type]
    assert (doc["created_at"], doc["updated_at"]) == (now, now)
    with pytest.raises(InvalidInput, match="naive"):
        validate_request(
            client, {}, None, False, client_model=LLMClient, created_at=dt.datetime(2024, 1, 1)
        )


async def test_pages_go_past_the_last_representable_millisecond(client: LLMClient) -> None:
    last = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    for when in (last, last - dt.timedelta(days=1)):
        await LLMClientRequest.objects.create(
            llm_client=client, request={}, session_key="end", created_at=when
        )
    history = LLMClientRequest.objects.for_session("end").order_by("-created_at")
    first = await history.page(size=1)
    assert [r.created_at for r in first.items] == [last]
    assert first.next_cursor is not None
    second = await history.page(size=1, after=first.next_cursor)
    assert [r.created_at for r in second.items] == [last - dt.timedelta(days=1)]


async def test_the_recorder_backfills_like_objects_create(client: LLMClient) -> None:
    when = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    async with Recorder(flush_interval=0.01) as recorder:
        with pytest.raises(InvalidInput, match="naive"):
            recorder.record(client, {"q": 1}, created_at=dt.datetime(2026, 3, 1))
        record_id = recorder.record(client, {"q": 1}, session_key="old", created_at=when)
        await recorder.flush()
    stored = await LLMClientRequest.objects.get(pk=record_id)
    assert stored.created_at == stored.updated_at == when.replace(microsecond=123000)
