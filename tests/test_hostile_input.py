"""Strings BSON cannot encode and times UTC cannot hold: refused, typed, before any I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from llmreq_mongo import (
    InvalidInput,
    InvalidLookup,
    LLMClient,
    LLMClientRequest,
    analytics,
)
from llmreq_mongo._checks import check_window
from llmreq_mongo._time import aware_utc, check_aware

SURROGATE = "\ud800"
#: In Python's range, but its UTC instant (year 0) is not.
TOO_EARLY = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))
TOO_LATE = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-14)))

LOOKUPS: list[dict[str, Any]] = [
    {"session_key": SURROGATE},
    {"session_key__startswith": f"ab{SURROGATE}"},
    {"session_key__in": ["ok", SURROGATE]},
    {"request__model": SURROGATE},
    {"request__messages__0__content__contains": SURROGATE},
    {f"request__{SURROGATE}": 1},
    {f"request__a{SURROGATE}b__exact": "x"},
]


@pytest.mark.parametrize("lookups", LOOKUPS, ids=lambda d: ascii(d))
def test_lone_surrogates_in_lookups_are_refused(lookups: dict[str, Any]) -> None:
    with pytest.raises(InvalidLookup, match="Unicode"):
        LLMClientRequest.objects.filter(**lookups)


def test_nul_in_a_lookup_path_is_refused() -> None:
    with pytest.raises(InvalidLookup, match="NUL"):
        LLMClientRequest.objects.filter(**{"request__a\x00b": 1})
    with pytest.raises(InvalidLookup, match="NUL"):
        LLMClientRequest.objects.order_by("request__a\x00b")


def test_order_by_a_surrogate_path_is_refused() -> None:
    with pytest.raises(InvalidLookup, match="Unicode"):
        LLMClientRequest.objects.order_by(f"-request__{SURROGATE}")


@pytest.mark.parametrize("bound", [TOO_EARLY, TOO_LATE], ids=["year-0", "year-10000"])
def test_out_of_range_aware_datetimes_are_refused(bound: dt.datetime) -> None:
    with pytest.raises(InvalidInput, match="out of range"):
        aware_utc("since", bound)
    with pytest.raises(InvalidInput, match="out of range"):
        check_aware("created_at", bound)
    with pytest.raises(InvalidLookup, match="out of range"):
        LLMClientRequest.objects.filter(created_at__gte=bound)
    with pytest.raises(InvalidInput, match="out of range"):
        check_window(bound, None)


def test_the_type_message_has_the_right_article() -> None:
    with pytest.raises(InvalidLookup, match="got an int"):
        LLMClientRequest.objects.filter(session_key=3)
    with pytest.raises(InvalidInput, match="got an int"):
        LLMClientRequest.objects.for_session(3)  # type: ignore[arg-type]


async def _count(llmreq_db: object) -> int:
    return await LLMClientRequest.objects.count() + await LLMClient.objects.count()


async def _call(call: Callable[[LLMClient], Any], client: LLMClient) -> None:
    result = call(client)  # building a query raises at once; a coroutine when awaited
    if hasattr(result, "__await__"):
        await result


CALLS: list[tuple[str, Callable[[LLMClient], Any]]] = [
    ("for_session", lambda c: LLMClientRequest.objects.for_session(SURROGATE)),
    (
        "create session_key",
        lambda c: LLMClientRequest.objects.create(llm_client=c, request={}, session_key=SURROGATE),
    ),
    (
        "create payload value",
        lambda c: LLMClientRequest.objects.create(llm_client=c, request={"q": SURROGATE}),
    ),
    (
        "create payload key",
        lambda c: LLMClientRequest.objects.create(llm_client=c, request={SURROGATE: 1}),
    ),
    ("client name", lambda c: LLMClient.objects.create(name=f"bot{SURROGATE}")),
    ("client description", lambda c: LLMClient.objects.create(name="b2", description=SURROGATE)),
    (
        "client metadata value",
        lambda c: LLMClient.objects.create(name="b3", metadata={"a": [SURROGATE]}),
    ),
    ("client metadata key", lambda c: LLMClient.objects.create(name="b4", metadata={SURROGATE: 1})),
    (
        "client metadata NUL key",
        lambda c: LLMClient.objects.create(name="b5", metadata={"a\x00": 1}),
    ),
    ("page cursor", lambda c: LLMClientRequest.objects.all().page(size=2, after=SURROGATE)),
    ("analytics session", lambda c: analytics.request_counts(session_key=SURROGATE)),
    ("analytics group_by", lambda c: analytics.request_counts(group_by=f"a{SURROGATE}")),
    ("analytics window", lambda c: analytics.request_counts(since=TOO_EARLY)),
    ("sessions window", lambda c: analytics.session_summaries(until=TOO_LATE)),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[n for n, _ in CALLS])
async def test_writes_and_reads_refuse_them_before_sending(
    client: LLMClient, call: Callable[[LLMClient], Any]
) -> None:
    before = await _count(client)
    with pytest.raises(InvalidInput):
        await _call(call, client)
    assert await _count(client) == before
