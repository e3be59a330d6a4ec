"""Property tests: any JSON payload round-trips exactly; anything else is refused cleanly.

Payloads come from hypothesis: deep nesting, all of Unicode (astral planes
included), keys starting with ``$`` or holding ``.`` or ``%``, ``$ref``/``$id``
pairs, floats from the smallest subnormal to the largest double, integers at
the 64-bit edges, empty containers. Each one is written with
``objects.create`` and read back with ``get``: it must come back identical
(types, key order and the sign of zero included), or be refused with
``InvalidPayload`` before anything reaches the database.

All examples share one database (hypothesis and function-scoped fixtures do
not mix); the count of documents is checked after every refusal.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from _reliability import Tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmreq_mongo import (
    Handle,
    InvalidInput,
    InvalidPayload,
    LLMClient,
    LLMClientRequest,
    PayloadTooLarge,
    init,
)
from llmreq_mongo.pytest_plugin import TestServer
from test_recorder_hot_path import containers_of

INT64 = (-(2**63), 2**63 - 1)
# mongod stores documents nested at most 180 levels deep (its maxBSONDepth of 200
# less 20 it keeps for itself; an empty sub-document does not count), and the
# record around the payload is one of them: a payload may nest 179 containers.
MAX_DEPTH = 179

COUNTS: Counter[str] = Counter()


class State:
    """What the module's database holds: the client, and how many requests were stored."""

    client: LLMClient
    stored = 0


@pytest.fixture(scope="module")
async def payload_db(llmreq_engine: TestServer) -> AsyncIterator[Handle]:
    """One database for every example of the module (and its figures, filed at the end)."""
    name = f"llmreq_props_{uuid.uuid4().hex[:12]}"
    handle = await init(llmreq_engine.uri, database=name)
    State.client = await LLMClient.objects.create(name="property-bot")
    State.stored = 0
    try:
        yield handle
    finally:
        await handle.client.drop_database(name)
        await handle.close()
        for suite in ("round trip", "converted", "refused"):
            tried = COUNTS[f"{suite}:tried"]
            if tried:
                Tally(
                    "payloads",
                    f"hypothesis: {suite}",
                    "generated payloads",
                    attempted=tried,
                    acknowledged=COUNTS[f"{suite}:accepted"],
                    stored=COUNTS[f"{suite}:stored"],
                    lost=COUNTS[f"{suite}:lost"],
                    errors={
                        k.split(":", 2)[2]: v
                        for k, v in COUNTS.items()
                        if k.startswith(f"{suite}:error:")
                    },
                    result="ok",
                ).file()


# -- strategies ----------------------------------------------------------------

AWKWARD_KEYS = [
    "$ref",
    "$id",
    "$db",
    "$schema",
    "$",
    "$$",
    ".",
    "..",
    "a.b",
    "%",
    "%24ref",
    "%2E",
    "%25",
    "a%2Eb",
    "$.%",
    "_id",
    "",
    " ",
    "a$b",
    "\U0001f600",
    "\U0001d518\U0001d52b\U0001d526",
]
keys = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10),
    st.sampled_from(AWKWARD_KEYS),
    st.text(alphabet="$.%2E4ab", max_size=6),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]),
)
integers = st.one_of(
    st.integers(*INT64),
    st.sampled_from([INT64[0], INT64[1], 2**31, -(2**31) - 1, 2**53 + 1, 0]),
)
scalars = st.one_of(st.none(), st.booleans(), integers, floats, st.text())


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
        st.fixed_dictionaries({"$ref": st.text(max_size=8), "$id": children}),
        st.fixed_dictionaries({"$ref": st.just("llm_clients"), "$id": integers, "$db": st.text()}),
    )


json_values = st.recursive(scalars, _containers, max_leaves=40)


@st.composite
def deep(draw: st.DrawFn, depth: st.SearchStrategy[int]) -> tuple[Any, int]:
    """A value nested ``n`` containers deep, and ``n``."""
    n = draw(depth)
    value: Any = draw(scalars)
    for _ in range(n):
        value = [value] if draw(st.booleans()) else {draw(keys): value}
    return value, n


# Values that are not JSON, each with the reason it is refused.
bad_leaves = st.one_of(
    st.binary(max_size=8),
    st.builds(bytearray, st.binary(max_size=4)),
    st.builds(object),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.sampled_from([math.nan, math.inf, -math.inf, float("-nan")]),
    st.integers(min_value=2**63),
    st.integers(max_value=-(2**63) - 1),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), scalars, min_size=1),
    st.dictionaries(st.text(min_size=1).map(lambda k: k + "\x00"), scalars, min_size=1),
    st.dictionaries(
        st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2), scalars, min_size=1
    ),
    st.just(lambda: None),
    st.just(Ellipsis),
    st.just(type),
)


def _hide(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Put a refused value somewhere inside otherwise valid JSON."""
    in_dict = st.builds(
        lambda good, key, bad: {**good, key: bad},
        st.dictionaries(keys, json_values, max_size=3),
        keys,
        children,
    )
    in_list = st.builds(
        lambda good, at, bad: [*good[:at], bad, *good[at:]],
        st.lists(json_values, max_size=3),
        st.integers(0, 3),
        children,
    )
    return st.one_of(in_dict, in_list)


bad_payloads = st.recursive(bad_leaves, _hide, max_leaves=4)


# -- exact comparison ------------------------------------------------------------


def same(expected: Any, got: Any) -> bool:
    """Equal, with the same JSON types, the same key order and the same sign of zero."""
    if isinstance(expected, bool) or expected is None:
        return got is expected
    if isinstance(expected, int):
        # BSON int64 comes back as bson.Int64, an int subclass: the same JSON number.
        return isinstance(got, int) and not isinstance(got, bool) and int(got) == expected
    if isinstance(expected, float):
        return isinstance(got, float) and struct.pack("<d", got) == struct.pack("<d", expected)
    if isinstance(expected, str):
        return isinstance(got, str) and got == expected
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and list(got) == list(expected)
            and all(same(expected[k], got[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(same(e, g) for e, g in zip(expected, got, strict=True))
        )
    raise AssertionError(f"not a JSON value: {expected!r}")


async def _round_trip(suite: str, payload: Any, expected: Any) -> None:
    COUNTS[f"{suite}:tried"] += 1
    created = await LLMClientRequest.objects.create(
        llm_client=State.client, request=payload, session_key="props"
    )
    COUNTS[f"{suite}:accepted"] += 1
    State.stored += 1
    assert same(expected, created.request)
    # A copy: no dict or list of the caller's payload is in the document, so
    # changing the payload after create() cannot change the document.
    assert not containers_of(created.request) & containers_of(payload)
    got = await LLMClientRequest.objects.get(pk=created.id)
    COUNTS[f"{suite}:stored"] += 1
    if not same(expected, got.request):
        COUNTS[f"{suite}:lost"] += 1
        raise AssertionError(f"stored {expected!r}, read back {got.request!r}")


async def _refused(suite: str, payload: Any) -> None:
    COUNTS[f"{suite}:tried"] += 1
    with pytest.raises(InvalidPayload) as info:
        await LLMClientRequest.objects.create(
            llm_client=State.client, request=payload, session_key="props"
        )
    assert isinstance(info.value, InvalidInput)
    assert isinstance(info.value, (ValueError, TypeError))
    COUNTS[f"{suite}:error:{type(info.value).__name__}"] += 1
    assert await LLMClientRequest.objects.count() == State.stored


# -- the properties ----------------------------------------------------------------

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(payload=json_values)
async def test_json_payloads_round_trip_exactly(payload_db: Handle, payload: Any) -> None:
    await _round_trip("round trip", payload, payload)


@settings(PROPERTY, max_examples=60)
# The exact boundary is pinned by test_nesting_limit_fits_mongodb.
@given(value=deep(st.integers(1, MAX_DEPTH + 15).filter(lambda n: n != MAX_DEPTH + 1)))
async def test_deep_nesting_round_trips_or_is_refused(
    payload_db: Handle, value: tuple[Any, int]
) -> None:
    payload, depth = value
    if depth <= MAX_DEPTH:
        await _round_trip("round trip", payload, payload)
    else:
        await _refused("refused", payload)


@settings(PROPERTY, max_examples=150)
@given(payload=bad_payloads)
async def test_non_json_is_refused_and_nothing_is_written(payload_db: Handle, payload: Any) -> None:
    await _refused("refused", payload)


def _converted(value: Any) -> Any:
    """What the reference's JSON encoder makes of a value (the documented conversions)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return [_converted(v) for v in value]
    if isinstance(value, dict):
        return {k: _converted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_converted(v) for v in value]
    return value


convertible_leaves = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
    st.decimals(),
    st.uuids(),
    st.tuples(scalars, scalars),
    st.frozensets(st.integers(*INT64), max_size=4),
    st.sets(st.text(max_size=4), max_size=4),
)
convertible = st.recursive(
    convertible_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)


@settings(PROPERTY, max_examples=100)
@given(payload=convertible)
async def test_convertible_values_are_stored_as_their_json_form(
    payload_db: Handle, payload: Any
) -> None:
    await _round_trip("converted", payload, _converted(payload))


# -- the edges, pinned --------------------------------------------------------------


async def test_nesting_limit_fits_mongodb(payload_db: Handle) -> None:
    """179 containers round-trip; 180 make a record MongoDB refuses, so the library must.

    The library allows 180 (``_payload.MAX_NESTING``), which the embedded engine
    stores (its limit is 200) but mongod refuses with ``Overflow``: on MongoDB
    the caller would get a ``StorageError`` after a round trip instead of an
    ``InvalidPayload`` before it.
    """
    ok: Any = "leaf"
    for _ in range(MAX_DEPTH):
        ok = {"k": ok}
    await _round_trip("round trip", ok, ok)
    try:
        for too_deep in ({"k": ok}, [ok]):
            with pytest.raises(InvalidPayload):
                await LLMClientRequest.objects.create(
                    llm_client=State.client, request=too_deep, session_key="too-deep"
                )
    finally:
        await LLMClientRequest.objects.filter(session_key="too-deep").delete()
    await _refused("refused", {"k": {"k": ok}})


async def test_oversized_payload_is_refused_before_io(payload_db: Handle) -> None:
    COUNTS["refused:tried"] += 1
    with pytest.raises(PayloadTooLarge):
        await LLMClientRequest.objects.create(
            llm_client=State.client, request={"blob": "x" * (16 * 1024 * 1024)}
        )
    COUNTS["refused:error:PayloadTooLarge"] += 1
    assert await LLMClientRequest.objects.count() == State.stored


async def test_ref_id_pair_is_not_read_back_as_a_dbref(payload_db: Handle) -> None:
    payload = {"schema": {"$ref": "#/definitions/x", "$id": "urn:x"}, "a.b": {"%": 1}}
    await _round_trip("round trip", payload, payload)
    raw = await payload_db.database["llm_client_requests"].find_one(
        {"request.schema.%24ref": {"$eq": "#/definitions/x"}}
    )
    assert raw is not None
    assert set(raw["request"]["schema"]) == {"%24ref", "%24id"}
    assert raw["request"]["a%2Eb"] == {"%25": 1}
