"""QuerySet: laziness, ordering, limits, terminal operations and iteration."""

from __future__ import annotations

import pytest

from llmreq_mongo import InvalidInput, LLMClient, LLMClientRequest, QuerySet


@pytest.fixture
async def five(client: LLMClient) -> list[LLMClientRequest]:
    return [
        await LLMClientRequest.objects.create(
            llm_client=client, request={"i": i}, session_key="even" if i % 2 == 0 else "odd"
        )
        for i in range(5)
    ]


def numbers(rows: list[LLMClientRequest]) -> list[int]:
    return [r.request["i"] for r in rows]


async def test_querysets_are_lazy_and_immutable(five: list[LLMClientRequest]) -> None:
    base = LLMClientRequest.objects.all()
    narrowed = base.filter(session_key="even")
    assert isinstance(narrowed, QuerySet)
    assert base.query == {}
    assert narrowed.query == {"session_key": "even"}
    assert await base.count() == 5
    assert await narrowed.count() == 3


async def test_order_by_and_limit(five: list[LLMClientRequest]) -> None:
    newest = await LLMClientRequest.objects.order_by("-created_at", "-id").to_list()
    assert numbers(newest) == [4, 3, 2, 1, 0]
    top2 = await LLMClientRequest.objects.order_by("-request__i").limit(2).to_list()
    assert numbers(top2) == [4, 3]
    assert await LLMClientRequest.objects.all().limit(2).count() == 2
    reordered = LLMClientRequest.objects.order_by("-created_at").order_by("created_at")
    assert reordered.sort == [("created_at", 1)]


async def test_first_last_exists(five: list[LLMClientRequest]) -> None:
    first = await LLMClientRequest.objects.all().first()
    last = await LLMClientRequest.objects.all().last()
    assert first is not None and last is not None
    assert (first.id, last.id) == (five[0].id, five[-1].id)
    ordered = LLMClientRequest.objects.order_by("-request__i")
    assert numbers([await ordered.first(), await ordered.last()]) == [4, 0]  # type: ignore[list-item]
    assert await LLMClientRequest.objects.filter(session_key="odd").exists()
    assert not await LLMClientRequest.objects.filter(session_key="none").exists()
    assert await LLMClientRequest.objects.filter(session_key="none").first() is None


async def test_async_iteration(five: list[LLMClientRequest]) -> None:
    seen = [r.request["i"] async for r in LLMClientRequest.objects.order_by("created_at", "id")]
    assert seen == [0, 1, 2, 3, 4]


async def test_update_and_delete_return_counts(five: list[LLMClientRequest]) -> None:
    assert await LLMClientRequest.objects.filter(session_key="odd").update(is_aggregation=True) == 2
    assert await LLMClientRequest.objects.filter(is_aggregation=True).count() == 2
    assert await LLMClientRequest.objects.filter(session_key="none").update(session_key="x") == 0
    assert await LLMClientRequest.objects.filter(session_key="even").delete() == 3
    assert await LLMClientRequest.objects.count() == 2


async def test_update_validates_payloads(five: list[LLMClientRequest]) -> None:
    qs = LLMClientRequest.objects.filter(session_key="odd")
    with pytest.raises(InvalidInput):
        await qs.update(request={"x": float("nan")})
    assert await qs.update(request={"$schema": "s", "a.b": 1}) == 2
    got = await qs.first()
    assert got is not None and got.request == {"$schema": "s", "a.b": 1}


async def test_limited_querysets_cannot_write(five: list[LLMClientRequest]) -> None:
    limited = LLMClientRequest.objects.all().limit(1)
    with pytest.raises(InvalidInput, match="limited"):
        await limited.update(session_key="x")
    with pytest.raises(InvalidInput, match="limited"):
        await limited.delete()
    assert await LLMClientRequest.objects.count() == 5


def test_manager_is_not_reachable_from_instances() -> None:
    with pytest.raises(AttributeError, match="through the class"):
        LLMClientRequest.model_construct().objects  # noqa: B018
