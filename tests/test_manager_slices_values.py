"""The manager offers every QuerySet method; slices; values() and values_list()."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import (
    AlreadyExists,
    InvalidInput,
    InvalidLookup,
    LLMClient,
    LLMClientRequest,
    Manager,
    QuerySet,
)
from llmreq_mongo.errors import DoesNotExist

UTC = dt.timezone.utc


def test_the_manager_has_every_public_queryset_method() -> None:
    wanted = {n for n, v in vars(QuerySet).items() if not n.startswith("_") and callable(v)}
    missing = sorted(n for n in wanted if not callable(getattr(Manager, n, None)))
    assert missing == []
    for name in wanted:
        q, m = inspect.signature(getattr(QuerySet, name)), inspect.signature(getattr(Manager, name))
        assert list(q.parameters) == list(m.parameters), name
        assert q.return_annotation == m.return_annotation, name


@pytest.fixture
async def rows(client: LLMClient) -> list[LLMClientRequest]:
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    return [
        await LLMClientRequest.objects.create(
            llm_client=client,
            request={"model": f"m{i}", "messages": [{"role": "user", "n": 2**40 + i}]},
            session_key=f"s{i % 3}",
            created_at=base + dt.timedelta(minutes=i),
        )
        for i in range(10)
    ]


async def test_manager_reads(rows: list[LLMClientRequest]) -> None:
    objects = LLMClientRequest.objects
    assert await objects.exists() is True
    assert (await objects.first()).id == rows[0].id  # type: ignore[union-attr]
    assert (await objects.last()).id == rows[-1].id  # type: ignore[union-attr]
    assert [r.id for r in await objects.to_list()] == [r.id for r in rows]
    assert len([r async for r in objects.iterator(batch_size=3)]) == 10
    assert len((await objects.page(size=4)).items) == 4
    assert await objects.limit(3).count() == 3
    assert await objects.update(is_aggregation=False) == 10
    assert await objects.delete() == 10
    assert await objects.exists() is False
    assert await objects.first() is None


async def test_slices_are_skip_and_limit_in_order(rows: list[LLMClientRequest]) -> None:
    qs = LLMClientRequest.objects.order_by("created_at")
    ids = [r.id for r in rows]
    assert [r.id for r in await qs[:3].to_list()] == ids[:3]
    assert [r.id for r in await qs[2:5].to_list()] == ids[2:5]
    assert [r.id for r in await qs[8:].to_list()] == ids[8:]
    assert [r.id for r in await qs[2:8][1:3].to_list()] == ids[3:5]  # a slice of a slice
    assert [r.id for r in await qs[2:4][0:10].to_list()] == ids[2:4]
    assert await qs[2:5].count() == 3
    assert await qs[9:20].count() == 1
    assert (await qs[2:5].first()).id == ids[2]  # type: ignore[union-attr]
    assert (await qs[2:5].last()).id == ids[4]  # type: ignore[union-attr]
    assert (await qs.limit(4).last()).id == ids[3]  # type: ignore[union-attr]
    assert await qs[4:4].to_list() == [] and await qs[4:4].count() == 0
    assert await qs[20:].exists() is False and await qs[20:].last() is None
    assert (await qs[5]).id == ids[5]
    assert (await LLMClientRequest.objects.all()[0]).id == ids[0]  # unordered: by _id
    unordered = LLMClientRequest.objects.all()[3:6]
    assert unordered.sort == [("_id", 1)]
    with pytest.raises(LLMClientRequest.DoesNotExist, match="index 10"):
        await qs[10]
    with pytest.raises(LookupError):
        await qs[99]


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (slice(-3, None), "negative"),
        (slice(None, -1), "negative"),
        (slice(0, 4, 2), "step"),
        (-1, "negative"),
        ("1", "int"),
        (True, "int"),
        (2**63, "at most"),
        (slice(2**70, None), "at most"),
        (slice(None, 2**64), "at most"),
    ],
    ids=[
        "neg-start",
        "neg-stop",
        "step",
        "neg-index",
        "str",
        "bool",
        "huge",
        "huge-start",
        "huge-stop",
    ],
)
def test_bad_slices_are_refused(key: Any, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        LLMClientRequest.objects.all()[key]


@pytest.mark.parametrize("n", [2**63, 2**70])
def test_a_limit_past_what_mongodb_takes_is_refused(n: int) -> None:
    with pytest.raises(InvalidInput, match="limit must be at most"):
        LLMClientRequest.objects.limit(n)


async def test_the_largest_limit_mongodb_takes_is_taken(rows: list[LLMClientRequest]) -> None:
    assert len(await LLMClientRequest.objects.limit(2**63 - 1).to_list()) == len(rows)


async def test_sliced_queries_refuse_writes_and_pages(rows: list[LLMClientRequest]) -> None:
    sliced = LLMClientRequest.objects.all()[2:4]
    with pytest.raises(InvalidInput, match="sliced"):
        await sliced.delete()
    with pytest.raises(InvalidInput, match="sliced"):
        await sliced.update(session_key="x")
    with pytest.raises(InvalidInput, match="page"):
        await sliced.page(size=2)
    assert await LLMClientRequest.objects.count() == 10


async def test_values_and_values_list(rows: list[LLMClientRequest], client: LLMClient) -> None:
    qs = LLMClientRequest.objects.filter(session_key="s0").order_by("created_at")
    got = await qs.values("id", "session_key", "request__model", "llm_client").to_list()
    assert got == [
        {
            "id": r.id,
            "session_key": "s0",
            "request__model": r.request["model"],
            "llm_client": client.id,
        }
        for r in rows[::3]
    ]
    assert all(type(row) is dict and type(row["id"]) is ObjectId for row in got)
    deep = await qs.values_list("request__messages__0__n", "request__absent__x").to_list()
    assert deep == [(2**40 + i, None) for i in range(0, 10, 3)]
    assert all(type(n) is int for n, _ in deep)
    keys = (
        await LLMClientRequest.objects.order_by("created_at")
        .values_list("session_key", flat=True)
        .to_list()
    )
    assert keys == [f"s{i % 3}" for i in range(10)]
    full = await qs.values().first()
    assert full is not None
    assert set(full) == {
        "response",
        "id",
        "created_at",
        "updated_at",
        "llm_client_id",
        "request",
        "session_key",
        "is_aggregation",
    }
    assert full["created_at"] == rows[0].created_at and full["created_at"].tzinfo is not None
    assert full["request"] == rows[0].request
    assert await qs[1:].values_list("id", flat=True).to_list() == [r.id for r in rows[3::3]]
    assert await qs.values("id").last() == {"id": rows[9].id}
    assert await qs.values("id").count() == 4
    assert [row async for row in qs.values_list("session_key")] == [("s0",)] * 4
    assert [row async for row in qs.values_list("pk", flat=True).iterator(batch_size=1)] == [
        r.id for r in rows[::3]
    ]
    assert await LLMClientRequest.objects.values_list("id", flat=True).to_list() == [
        r.id for r in rows
    ]


def test_values_refuse_bad_fields() -> None:
    with pytest.raises(InvalidLookup, match="no field"):
        LLMClientRequest.objects.values("nope")
    with pytest.raises(InvalidLookup):
        LLMClientRequest.objects.values("session_key__x")
    with pytest.raises(InvalidInput, match="exactly one field"):
        LLMClientRequest.objects.values_list("id", "session_key", flat=True)
    with pytest.raises(InvalidInput, match="True or False"):
        LLMClientRequest.objects.values_list("id", flat=1)  # type: ignore[arg-type]


async def test_get_or_create_follows_django_on_defaults(llmreq_db: object) -> None:
    # Django: the new object takes the lookups, then the defaults on top.
    made, created = await LLMClient.objects.get_or_create(
        name="a", defaults={"name": "b", "description": lambda: "called"}
    )
    assert created is True and (made.name, made.description) == ("b", "called")
    # Lookups with "__" are not fields of the new document.
    made, created = await LLMClient.objects.get_or_create(
        name__startswith="zz", defaults={"name": "zzz"}
    )
    assert created is True and made.name == "zzz"
    found, created = await LLMClient.objects.get_or_create(name__startswith="zz")
    assert created is False and found.id == made.id
    # Defaults that collide with another document, none matching the lookups.
    with pytest.raises(AlreadyExists):
        await LLMClient.objects.get_or_create(name="c", defaults={"name": "b"})
    with pytest.raises(InvalidInput, match="mapping"):
        await LLMClient.objects.get_or_create(name="d", defaults=[("name", "e")])  # type: ignore[arg-type]
    assert await LLMClient.objects.count() == 2
    assert issubclass(LLMClient.DoesNotExist, DoesNotExist)
