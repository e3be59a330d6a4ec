"""Deleting a client while its requests are being written leaves no request behind."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from llmreq_mongo import LLMClient, LLMClientRequest, Recorder, RecordsNotWritten
from llmreq_mongo._documents import request_document, validate_request, verify_clients

WRITERS = 6


async def _write_until_refused(
    client: LLMClient, deleted: asyncio.Event, tally: dict[str, int], busy: asyncio.Event
) -> None:
    """Create requests while the client is being deleted, and once more afterwards."""
    try:
        while not deleted.is_set():
            await LLMClientRequest.objects.create(
                llm_client=client, request={"n": 1}, session_key="s"
            )
            tally["written"] += 1
            if tally["written"] >= 3 * WRITERS:
                busy.set()
        await LLMClientRequest.objects.create(llm_client=client, request={"late": True})
        tally["written"] += 1
    except LLMClient.DoesNotExist:
        tally["refused"] += 1


@pytest.mark.parametrize("how", ["document", "queryset"])
async def test_concurrent_writes_during_a_delete_leave_no_orphan(
    llmreq_db: object, how: str
) -> None:
    for round_ in range(3):
        client = await LLMClient.objects.create(name=f"doomed-{how}-{round_}")
        bystander = await LLMClient.objects.create(name=f"stays-{how}-{round_}")
        await LLMClientRequest.objects.create(llm_client=bystander, request={})
        deleted = asyncio.Event()
        busy = asyncio.Event()
        tally = {"written": 0, "refused": 0}
        writers = [
            asyncio.create_task(_write_until_refused(client, deleted, tally, busy))
            for _ in range(WRITERS)
        ]
        await busy.wait()  # the delete starts while every writer is busy
        if how == "document":
            await client.delete()
        else:
            assert await LLMClient.objects.filter(pk=client.id).delete() == 1
        deleted.set()
        await asyncio.gather(*writers)
        # Every writer's last create came after the delete: each was refused.
        assert tally["refused"] == WRITERS
        assert await LLMClientRequest.objects.filter(llm_client_id=client.id).count() == 0
        assert await LLMClientRequest.objects.filter(llm_client_id=bystander.id).count() == 1


async def test_verify_clients_removes_what_a_batch_wrote_for_a_deleted_client(
    client: LLMClient,
) -> None:
    # What a batched writer (the recorder) does after each acknowledged batch.
    gone = await LLMClient.objects.create(name="gone")
    batch = [
        request_document(
            validate_request(owner, {"i": i}, "s", False, client_model=LLMClient),
            record_id=ObjectId(),
            now=client.created_at,
        )
        for i, owner in enumerate([client, gone, client, gone])
    ]
    await gone.delete()
    await LLMClientRequest.get_pymongo_collection().insert_many(batch)
    missing = await verify_clients([doc["llm_client_id"] for doc in batch])
    assert missing == {gone.id}
    assert await LLMClientRequest.objects.filter(llm_client_id=gone.id).count() == 0
    assert await LLMClientRequest.objects.filter(llm_client_id=client.id).count() == 2
    assert client.id is not None
    assert await verify_clients([client.id]) == frozenset()
    assert await verify_clients([]) == frozenset()


async def test_the_recorder_leaves_no_orphan_when_a_client_is_deleted(llmreq_db: object) -> None:
    client = await LLMClient.objects.create(name="doomed-by-recorder")
    refused: list[ObjectId] = []
    async with Recorder(
        max_batch=20, on_error=lambda doc, error: refused.append(doc["_id"])
    ) as recorder:

        async def keep_recording() -> None:
            for i in range(400):
                recorder.record(client, {"i": i}, session_key="s")
                await asyncio.sleep(0)

        writing = asyncio.create_task(keep_recording())
        await asyncio.sleep(0.05)
        await client.delete()
        await writing
        # Records refused for a deleted client are not acknowledged: flush says so.
        with pytest.raises(RecordsNotWritten):
            await recorder.flush()
    assert await LLMClientRequest.objects.filter(llm_client_id=client.id).count() == 0
    assert refused, "records written after the delete must be reported to on_error"
