"""Lookups: every operator against the server, refused values, and injection safety."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import ObjectId

from llmreq_mongo import InvalidInput, InvalidLookup, LLMClient, LLMClientRequest
from llmreq_mongo._queries import translate_lookups

UTC = dt.timezone.utc


@pytest.fixture
async def rows(client: LLMClient) -> list[LLMClientRequest]:
    other = await LLMClient.objects.create(name="other-bot")
    made = []
    specs: list[tuple[LLMClient, Any, str | None, bool]] = [
        (
            client,
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "a.b*"}]},
            "s1",
            False,
        ),
        (client, {"model": "gpt-4o-mini", "messages": [{"role": "system"}]}, "s1", False),
        (client, {"model": "claude", "$schema": "v1", "n": 3}, "s2", False),
        (other, {"model": "gpt-4o", "n": 7}, "s2", True),
        (other, None, None, False),
    ]
    for llm_client, payload, key, agg in specs:
        made.append(
            await LLMClientRequest.objects.create(
                llm_client=llm_client, request=payload, session_key=key, is_aggregation=agg
            )
        )
    return made


async def ids(**lookups: Any) -> list[ObjectId | None]:
    found = await LLMClientRequest.objects.filter(**lookups).order_by("created_at", "id").to_list()
    return [r.id for r in found]


def pick(rows: list[LLMClientRequest], *indexes: int) -> list[ObjectId | None]:
    return [rows[i].id for i in indexes]


async def test_operators(rows: list[LLMClientRequest], client: LLMClient) -> None:
    assert await ids(session_key="s1") == pick(rows, 0, 1)
    assert await ids(session_key__in=["s2", "zz"]) == pick(rows, 2, 3)
    assert await ids(session_key__ne="s1") == pick(rows, 2, 3, 4)
    assert await ids(session_key__isnull=True) == pick(rows, 4)
    assert await ids(session_key__isnull=False) == pick(rows, 0, 1, 2, 3)
    assert await ids(session_key__startswith="s") == pick(rows, 0, 1, 2, 3)
    assert await ids(session_key__contains="2") == pick(rows, 2, 3)
    assert await ids(is_aggregation=True) == pick(rows, 3)
    assert await ids(request__model="gpt-4o") == pick(rows, 0, 3)
    assert await ids(request__n__gt=3) == pick(rows, 3)
    assert await ids(request__n__gte=3, request__n__lt=7) == pick(rows, 2)
    assert await ids(request__n__lte=3) == pick(rows, 2)
    assert await ids(request__messages__0__role="user") == pick(rows, 0)
    assert await ids(request__messages__role="system") == pick(rows, 1)
    assert await ids(**{"request__$schema": "v1"}) == pick(rows, 2)
    assert await ids(request__isnull=True) == pick(rows, 4)
    assert await ids(request__model__startswith="gpt-4o") == pick(rows, 0, 1, 3)
    assert await ids(llm_client=client) == pick(rows, 0, 1, 2)
    assert await ids(llm_client=client.id) == pick(rows, 0, 1, 2)
    assert await ids(llm_client_id=str(client.id)) == pick(rows, 0, 1, 2)
    assert await ids(id=rows[2].id) == pick(rows, 2)
    assert await ids(pk=str(rows[2].id)) == pick(rows, 2)
    assert await ids(pk__in=[rows[0].id, rows[4].id]) == pick(rows, 0, 4)
    assert await ids(created_at__gte=rows[3].created_at) == pick(rows, 3, 4)


async def test_chaining_and_exclude(rows: list[LLMClientRequest]) -> None:
    qs = LLMClientRequest.objects.filter(session_key__isnull=False).exclude(
        session_key="s2", is_aggregation=True
    )
    assert [r.id for r in await qs.order_by("created_at").to_list()] == pick(rows, 0, 1, 2)
    assert await qs.filter(request__model="gpt-4o").count() == 1


async def test_contains_and_startswith_are_literal(rows: list[LLMClientRequest]) -> None:
    assert await ids(request__messages__0__content__contains="a.b*") == pick(rows, 0)
    for pattern in [".*", "^", "a.c", "(", "[", "\\", "(a+)+$", "b*"]:
        expected = pick(rows, 0) if pattern in "a.b*" else []
        assert await ids(request__messages__0__content__contains=pattern) == expected, pattern
    assert await ids(session_key__startswith=".*") == []
    assert await ids(session_key__contains="^s") == []


@pytest.mark.parametrize(
    "hostile",
    [{"$ne": ""}, {"$gt": ""}, ["s1"], {"$regex": ".*"}, {"$where": "1"}, 5, b"s1"],
    ids=repr,
)
async def test_session_key_must_be_a_string(rows: list[LLMClientRequest], hostile: Any) -> None:
    with pytest.raises(InvalidLookup, match="session_key"):
        LLMClientRequest.objects.filter(session_key=hostile)
    with pytest.raises(InvalidLookup):
        await LLMClientRequest.objects.get(session_key=hostile)
    with pytest.raises(InvalidLookup):
        LLMClientRequest.objects.exclude(session_key=hostile)


async def test_operator_dicts_on_payload_paths_are_literal(rows: list[LLMClientRequest]) -> None:
    # A dict compared with a JSON field is a literal sub-document, never an operator.
    assert await ids(request__model={"$ne": ""}) == []
    assert await ids(request__model__in=[{"$exists": True}]) == []
    assert await ids(request__model__startswith="gpt") == pick(rows, 0, 1, 3)


@pytest.mark.parametrize(
    ("lookups", "match"),
    [
        ({"colour": "red"}, "no field 'colour'"),
        ({"session_key__near": "x"}, "no sub-field 'near'"),
        ({"is_aggregation__model": True}, "not a JSON field"),
        ({"is_aggregation": "yes"}, "True or False"),
        ({"is_aggregation": 1}, "True or False"),
        ({"session_key__in": "s1"}, "a list"),
        ({"session_key__isnull": "yes"}, "True or False"),
        ({"created_at__gt": dt.datetime(2026, 1, 1)}, "naive datetime"),
        ({"created_at__gt": "2026-01-01"}, "datetime"),
        ({"id": "not-an-id"}, "ObjectId"),
        ({"pk": {"$ne": None}}, "ObjectId"),
        ({"llm_client": "bot"}, "document"),
        ({"request__n__gt": None}, "__isnull"),
        ({"request__": 1}, "empty path"),
        ({"is_aggregation__contains": "x"}, "strings"),
        ({"session_key__startswith": 3}, "a string"),
        ({"request__x": float("nan")}, "not a JSON number"),
    ],
    ids=repr,
)
def test_bad_lookups_fail_before_any_query(lookups: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidLookup, match=match):
        LLMClientRequest.objects.filter(**lookups)


async def test_unsaved_client_is_refused(llmreq_db: object) -> None:
    with pytest.raises(InvalidLookup, match="unsaved"):
        LLMClientRequest.objects.filter(llm_client=LLMClient(name="unsaved"))


def test_translation_uses_explicit_operators() -> None:
    query = translate_lookups(
        LLMClientRequest,
        {"session_key": "abc", "created_at__gte": dt.datetime(2026, 1, 1, tzinfo=UTC)},
    )
    assert query == {
        "session_key": "abc",
        "created_at": {"$gte": dt.datetime(2026, 1, 1, tzinfo=UTC)},
    }
    assert translate_lookups(LLMClientRequest, {"request__a.b__$c": 1}) == {"request.a%2Eb.%24c": 1}
    # Sub-documents and arrays are always compared through an explicit operator.
    assert translate_lookups(LLMClientRequest, {"request__m": {"$ne": ""}}) == {
        "request.m": {"$eq": {"%24ne": ""}}
    }
    same_op = translate_lookups(LLMClientRequest, {"pk": ObjectId(), "id": ObjectId()})
    assert "$and" in same_op


def test_naive_datetimes_are_rejected_with_advice() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        LLMClientRequest.objects.filter(created_at__lt=dt.datetime(2026, 1, 1))


def test_order_by_and_limit_validation() -> None:
    with pytest.raises(InvalidLookup, match="no field"):
        LLMClientRequest.objects.order_by("-colour")
    with pytest.raises(InvalidLookup):
        LLMClientRequest.objects.order_by("")
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(InvalidInput, match="positive integer"):
            LLMClientRequest.objects.all().limit(bad)  # type: ignore[arg-type]
