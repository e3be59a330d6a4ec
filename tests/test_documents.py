"""The documents: fields, timestamps, links, cascade, str/to_json, NotUpdated."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from bson import DBRef, ObjectId

from llmreq_mongo import (
    AlreadyExists,
    Handle,
    InvalidInput,
    LLMClient,
    LLMClientRequest,
    LLMClientRequests,
    NotUpdated,
    TimestampedDocument,
    init,
)
from llmreq_mongo.errors import DoesNotExist, MultipleObjectsReturned

UTC = dt.timezone.utc


# Defined at import time, before any init(); test_documents_defined_after_init_...
# covers classes defined later.
class Counter(TimestampedDocument):
    hits: int = 0

    class Settings:
        name = "counters"


class TaggedRequest(LLMClientRequest):
    tags: list[str] = []

    class Settings(LLMClientRequest.Settings):
        name = "tagged_requests"


@pytest.fixture
async def own_documents(llmreq_db: Handle) -> Handle:
    """The test database, initialised again with this module's own documents."""
    return await init(llmreq_db.database, document_models=[Counter, TaggedRequest])


def is_ms_utc(value: dt.datetime) -> bool:
    return (
        value.tzinfo is not None
        and value.utcoffset() == dt.timedelta(0)
        and (value.microsecond % 1000 == 0)
    )


async def test_create_matches_reference_example(client: LLMClient) -> None:
    req = await LLMClientRequests.objects.create(
        llm_client=client,
        request={"message": "Hello, llm_client!"},
        session_key="abc123",
        is_aggregation=False,
    )
    assert isinstance(req, LLMClientRequest)
    assert req.id is not None
    assert req.llm_client_id == client.id
    got = await LLMClientRequest.objects.get(pk=req.id)
    assert got.request == {"message": "Hello, llm_client!"}
    assert got.session_key == "abc123"
    assert got.is_aggregation is False
    assert got.llm_client_id == client.id
    assert got.created_at == req.created_at
    assert got.updated_at == req.updated_at
    by_client = await LLMClientRequest.objects.filter(llm_client=client).to_list()
    assert [r.id for r in by_client] == [got.id]


async def test_stored_document_is_native_bson(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(
        llm_client=client, request={"model": "gpt-4o", "n": 2}, session_key="s"
    )
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": req.id})
    assert raw is not None
    assert list(raw) == [
        "_id",
        "created_at",
        "updated_at",
        "llm_client",
        "llm_client_id",
        "request",
        "session_key",
        "is_aggregation",
        "response",
    ]
    assert raw["request"] == {"model": "gpt-4o", "n": 2}  # a document, not a string
    assert raw["llm_client"] == DBRef("llm_clients", client.id)
    assert raw["llm_client_id"] == client.id


async def test_fast_create_stores_what_beanie_insert_stores(client: LLMClient) -> None:
    fast = await LLMClientRequest.objects.create(
        llm_client=client, request={"a": [1, {"$b": 2}]}, session_key="k"
    )
    slow = LLMClientRequest(llm_client=client, request={"a": [1, {"$b": 2}]}, session_key="k")
    await slow.insert()
    coll = LLMClientRequest.get_pymongo_collection()
    raw_fast = await coll.find_one({"_id": fast.id}, projection={"_id": 0})
    raw_slow = await coll.find_one({"_id": slow.id}, projection={"_id": 0})
    assert raw_fast is not None and raw_slow is not None
    for doc in (raw_fast, raw_slow):
        del doc["created_at"], doc["updated_at"]
    assert raw_fast == raw_slow
    assert list(raw_fast) == list(raw_slow)


async def test_defaults(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(llm_client=client)
    got = await LLMClientRequest.objects.get(id=req.id)
    assert got.request is None
    assert got.session_key is None
    assert got.is_aggregation is False


async def test_timestamps_are_utc_milliseconds_and_round_trip(client: LLMClient) -> None:
    before = dt.datetime.now(UTC) - dt.timedelta(milliseconds=1)
    req = await LLMClientRequest.objects.create(llm_client=client, request=1)
    assert is_ms_utc(req.created_at) and is_ms_utc(req.updated_at)
    assert req.created_at == req.updated_at
    assert before <= req.created_at <= dt.datetime.now(UTC)
    got = await LLMClientRequest.objects.get(id=req.id)
    assert got.created_at == req.created_at
    assert is_ms_utc(got.created_at)
    assert is_ms_utc(client.created_at)


async def test_every_write_path_refreshes_updated_at_only(client: LLMClient) -> None:
    req = LLMClientRequest(llm_client=client, request={"v": 0})
    await req.insert()
    created = req.created_at
    stamps = [req.updated_at]

    async def tick() -> None:
        await asyncio.sleep(0.003)

    await tick()
    req.session_key = "saved"
    await req.save()
    stamps.append(req.updated_at)
    await tick()
    req.session_key = "replaced"
    await req.replace()
    stamps.append(req.updated_at)
    await tick()
    await req.set({LLMClientRequest.session_key: "set"})
    stamps.append(req.updated_at)
    await tick()
    await req.update({"$set": {"is_aggregation": True}})
    stamps.append(req.updated_at)
    await tick()
    assert await LLMClientRequest.objects.filter(id=req.id).update(session_key="manager") == 1
    stored = await LLMClientRequest.objects.get(id=req.id)
    stamps.append(stored.updated_at)

    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stored.created_at == created
    assert stored.session_key == "manager"
    assert stored.is_aggregation is True


async def test_beanie_update_operators_refresh_updated_at(own_documents: Handle) -> None:
    doc = await Counter.objects.create(hits=1)
    first = doc.updated_at
    await asyncio.sleep(0.003)
    await doc.inc({Counter.hits: 2})
    raw = await Counter.get_pymongo_collection().find_one({"_id": doc.id})
    assert raw is not None and raw["hits"] == 3
    assert raw["updated_at"] > first
    assert raw["created_at"] == doc.created_at


async def test_manager_update_refuses_created_at_and_ids(client: LLMClient) -> None:
    await LLMClientRequest.objects.create(llm_client=client)
    qs = LLMClientRequest.objects.all()
    with pytest.raises(InvalidInput, match="created_at"):
        await qs.update(created_at=dt.datetime.now(UTC))
    with pytest.raises(InvalidInput, match="llm_client_id"):
        await qs.update(llm_client_id=ObjectId())
    with pytest.raises(InvalidInput, match="unknown field"):
        await qs.update(colour="red")
    with pytest.raises(InvalidInput, match="session_key"):
        await qs.update(session_key={"$ne": ""})


@pytest.mark.parametrize("value", [1, dt.datetime(2020, 1, 1, tzinfo=UTC)])
async def test_manager_update_refuses_updated_at_it_would_overwrite(
    client: LLMClient, value: Any
) -> None:
    record = await LLMClientRequest.objects.create(llm_client=client, session_key="s")
    with pytest.raises(InvalidInput, match="every update sets it"):
        await LLMClientRequest.objects.all().update(updated_at=value, session_key="t")
    stored = await LLMClientRequest.objects.get(id=record.id)
    assert (stored.session_key, stored.updated_at) == ("s", record.updated_at)


async def test_update_moves_link_and_id_together(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other")
    req = await LLMClientRequest.objects.create(llm_client=client)
    assert await LLMClientRequest.objects.filter(id=req.id).update(llm_client=other) == 1
    got = await LLMClientRequest.objects.get(id=req.id)
    assert got.llm_client_id == other.id
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": req.id})
    assert raw is not None and raw["llm_client"] == DBRef("llm_clients", other.id)


async def test_link_resolves_to_the_client(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(llm_client=client)
    got = await LLMClientRequest.objects.get(id=req.id)
    await got.fetch_link("llm_client")
    assert isinstance(got.llm_client, LLMClient)
    assert got.llm_client.name == "support-bot"


async def test_reassigning_the_link_keeps_the_id_in_step(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other")
    req = LLMClientRequest(llm_client=client)
    await req.insert()
    req.llm_client = other
    await req.save()
    raw = await LLMClientRequest.get_pymongo_collection().find_one({"_id": req.id})
    assert raw is not None and raw["llm_client_id"] == other.id


async def test_related_name(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other")
    for i in range(3):
        await LLMClientRequest.objects.create(llm_client=client, request=i)
    await LLMClientRequest.objects.create(llm_client=other, request=9)
    mine = await client.llmclientrequests.order_by("created_at").to_list()
    assert [r.request for r in mine] == [0, 1, 2]
    with pytest.raises(InvalidInput, match="not saved"):
        _ = LLMClient(name="unsaved").llmclientrequests


async def test_cascade_delete_through_document(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other")
    for _ in range(3):
        await LLMClientRequest.objects.create(llm_client=client)
    await LLMClientRequest.objects.create(llm_client=other)
    await client.delete()
    assert await LLMClientRequest.objects.filter(llm_client_id=client.id).count() == 0
    assert await LLMClientRequest.objects.count() == 1
    assert await LLMClient.objects.count() == 1


async def test_cascade_delete_through_queryset(client: LLMClient) -> None:
    other = await LLMClient.objects.create(name="other")
    keep = await LLMClient.objects.create(name="keep")
    for c in (client, other, keep):
        await LLMClientRequest.objects.create(llm_client=c)
    deleted = await LLMClient.objects.exclude(name="keep").delete()
    assert deleted == 2
    remaining = await LLMClientRequest.objects.all().to_list()
    assert [r.llm_client_id for r in remaining] == [keep.id]


async def test_client_name_is_unique_and_bounded(llmreq_db: object) -> None:
    await LLMClient.objects.create(name="bot")
    with pytest.raises(LLMClient.AlreadyExists, match="bot"):
        await LLMClient.objects.create(name="bot")
    with pytest.raises(InvalidInput, match="name"):
        await LLMClient.objects.create(name="")
    with pytest.raises(InvalidInput, match="name"):
        await LLMClient.objects.create(name="x" * 256)
    with pytest.raises(InvalidInput, match="unknown field"):
        await LLMClient.objects.create(name="y", colour="red")
    assert await LLMClient.objects.count() == 1
    assert issubclass(LLMClient.AlreadyExists, AlreadyExists)


async def test_get_or_create(llmreq_db: object) -> None:
    first, created = await LLMClient.objects.get_or_create(
        name="bot", defaults={"description": "d"}
    )
    again, created_again = await LLMClient.objects.get_or_create(name="bot")
    assert created and not created_again
    assert again.id == first.id and again.description == "d"


async def test_str_and_to_json(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(
        llm_client=client, request={"q": [1, 2]}, session_key="s1"
    )
    assert str(req) == f"LLMClientRequest(id={req.id})"
    data = req.to_json()
    assert data == {
        "id": str(req.id),
        "llm_client": str(client.id),
        "llm_client_id": str(client.id),
        "request": {"q": [1, 2]},
        "session_key": "s1",
        "is_aggregation": False,
        "created_at": req.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "updated_at": req.updated_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    import json

    assert json.loads(json.dumps(data)) == data
    assert client.to_json()["name"] == "support-bot"


async def test_get_errors_are_per_model(client: LLMClient) -> None:
    with pytest.raises(LLMClientRequest.DoesNotExist):
        await LLMClientRequest.objects.get(session_key="nope")
    for _ in range(2):
        await LLMClientRequest.objects.create(llm_client=client, session_key="dup")
    with pytest.raises(LLMClientRequest.MultipleObjectsReturned, match="more than one"):
        await LLMClientRequest.objects.get(session_key="dup")
    assert issubclass(LLMClientRequest.DoesNotExist, DoesNotExist)
    assert issubclass(LLMClientRequest.MultipleObjectsReturned, MultipleObjectsReturned)
    assert issubclass(LLMClientRequest.NotUpdated, NotUpdated)
    assert LLMClientRequest.DoesNotExist is not LLMClient.DoesNotExist
    with pytest.raises(LLMClient.DoesNotExist):
        await LLMClient.objects.get(name="missing")


async def test_not_updated(client: LLMClient) -> None:
    req = LLMClientRequest(llm_client=client, request=1)
    with pytest.raises(LLMClientRequest.NotUpdated, match="never saved"):
        await req.save(force_update=True)
    await req.insert()
    await req.save(force_update=True)  # exists: fine
    await LLMClientRequest.objects.filter(id=req.id).delete()
    with pytest.raises(LLMClientRequest.NotUpdated, match="no longer exists"):
        await req.save(force_update=True)
    with pytest.raises(LLMClientRequest.NotUpdated, match="no longer exists"):
        await req.set({LLMClientRequest.session_key: "x"})
    with pytest.raises(LLMClientRequest.NotUpdated):
        await req.replace()
    assert await LLMClientRequest.objects.count() == 0


async def test_beanie_api_keeps_working(client: LLMClient) -> None:
    req = await LLMClientRequest.objects.create(
        llm_client=client, request={"$schema": "s", "a.b": 1}, session_key="b"
    )
    found = await LLMClientRequest.find(LLMClientRequest.session_key == "b").to_list()
    assert [f.id for f in found] == [req.id]
    assert found[0].request == {"$schema": "s", "a.b": 1}
    by_ref = await LLMClientRequest.find(LLMClientRequest.llm_client == client.to_ref()).count()
    assert by_ref == 1


async def test_users_can_subclass_with_fields(own_documents: Handle, client: LLMClient) -> None:
    indexes = await TaggedRequest.get_pymongo_collection().index_information()
    assert {"llmreq_session_time", "llmreq_client_time", "llmreq_created_at"} <= set(indexes)
    req = await TaggedRequest.objects.create(llm_client=client, request={"$x": 1}, tags=["a"])
    got = await TaggedRequest.objects.get(id=req.id)
    assert got.tags == ["a"] and got.request == {"$x": 1}
    assert got.llm_client_id == client.id
    with pytest.raises(InvalidInput):
        await TaggedRequest.objects.create(llm_client=client, tags="not-a-list")
    assert issubclass(TaggedRequest.DoesNotExist, LLMClientRequest.DoesNotExist)


async def test_documents_defined_after_init_get_their_own_defaults(
    llmreq_db: Handle, client: LLMClient
) -> None:
    # init() has run for this test (the fixture), so Beanie has set up
    # TimestampedDocument and LLMClientRequest: classes defined only now
    # inherit fields from initialised classes, as a plugin imported late does.
    class LateNote(TimestampedDocument):
        text: str

        class Settings:
            name = "late_notes"

    class LateRequest(LLMClientRequest):
        label: str = "none"

        class Settings(LLMClientRequest.Settings):
            name = "late_requests"

    for model in (LateNote, LateRequest):
        assert model.model_fields["id"].default is None
        assert model.model_fields["created_at"].default_factory is not None
    await init(llmreq_db.database, document_models=[LateNote, LateRequest])
    note = await LateNote.objects.create(text="hi")
    again = await LateNote.objects.create(text="there")
    assert isinstance(note.id, ObjectId) and isinstance(again.id, ObjectId)
    assert note.id != again.id
    assert is_ms_utc(note.created_at) and note.updated_at == note.created_at
    stored = await LateNote.get_pymongo_collection().find_one({"_id": note.id})
    assert stored is not None and stored["text"] == "hi"
    request = await LateRequest.objects.create(
        llm_client=client, request={"q": 1}, session_key="late", label="x"
    )
    assert isinstance(request.id, ObjectId)
    got = await LateRequest.objects.get(pk=request.id)
    assert got.label == "x" and got.request == {"q": 1}
    # The query expressions Beanie gives a class still work on the new ones.
    assert await LateNote.find(LateNote.text == "there").count() == 1
