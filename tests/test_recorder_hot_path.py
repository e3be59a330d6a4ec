"""The hot path's lean payload walk gives exactly what the full walk gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmreq_mongo import LLMClient, LLMClientRequest
from llmreq_mongo._queries.payload import (
    MAX_PAYLOAD_BYTES,
    _fast_normalize,
    _Normalizer,
    _NotPlainJSON,
    normalize_payload,
)
from llmreq_mongo.errors import InvalidPayload, PayloadTooLarge

keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["$schema", "$ref", "a.b", "100%", "x\x00y", "é.é", "\ud800"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "naïve", "日本"]),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=12),
        st.dictionaries(keys, inner, max_size=6),
        st.tuples(inner),
    ),
    max_leaves=40,
)


def full_walk(value: Any) -> tuple[Any, bool, int]:
    walker = _Normalizer()
    return walker.value(value, "", 0), walker.escaped, walker.size


def containers_of(value: Any) -> set[int]:
    """The ids of every dict and list (and tuple) in ``value``: what a copy must not share."""
    if isinstance(value, dict):
        return {id(value)}.union(*map(containers_of, value.values()))
    if isinstance(value, (list, tuple)):
        return {id(value)}.union(*map(containers_of, value))
    return set()


def same_shape(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (a != a and b != b)


@settings(max_examples=100, deadline=None)
@given(json_like)
def test_fast_walk_matches_full_walk(value: Any) -> None:
    try:
        expected: tuple[Any, bool, int] | None = full_walk(value)
    except InvalidPayload:
        expected = None
    try:
        fast = _fast_normalize(value)
    except _NotPlainJSON:
        return  # the full walk decides: normalize_payload falls back to it
    assert expected is not None, "the fast walk accepted what the full walk refuses"
    assert fast[1] == expected[1]
    assert same_shape(fast[0], expected[0])


@settings(max_examples=60, deadline=None)
@given(json_like)
def test_normalize_payload_result_and_errors_are_the_full_walks(value: Any) -> None:
    try:
        expected = full_walk(value)
    except InvalidPayload as exc:
        refused = str(exc)
    else:
        refused = ""
    if refused:
        with pytest.raises(InvalidPayload) as info:
            normalize_payload(value)
        assert str(info.value) == refused
        return
    got = normalize_payload(value)
    assert got[1] == expected[1] and same_shape(got[0], expected[0])


def test_fresh_containers_of_the_payload_types() -> None:
    payload = {"a": [{"b": 1}], "$c": {"d.e": None}}
    normalised, escaped = normalize_payload(payload)
    assert escaped is True
    assert type(normalised) is dict and type(normalised["a"]) is list
    assert normalised == payload and normalised["a"] is not payload["a"]


def test_too_large_is_left_to_the_full_walk() -> None:
    big = {"text": "x" * (MAX_PAYLOAD_BYTES - 10)}
    with pytest.raises(_NotPlainJSON):
        _fast_normalize(big)
    with pytest.raises(PayloadTooLarge):
        normalize_payload(big)


async def test_create_builds_the_document_model_construct_builds(client: LLMClient) -> None:
    for _ in range(2):  # the first create builds the template, the second uses it
        made = await LLMClientRequest.objects.create(
            llm_client=client, request={"a": [1]}, session_key="k"
        )
        values = {k: v for k, v in made.__dict__.items() if k != "revision_id"}
        reference = LLMClientRequest.model_construct(**values)
        reference._remember_stored()  # a created record knows its stored shard key
        assert type(made) is LLMClientRequest
        assert list(made.__dict__.items()) == list(reference.__dict__.items())
        assert made.__pydantic_fields_set__ == reference.__pydantic_fields_set__
        assert made.__pydantic_private__ == reference.__pydantic_private__
        assert made.__pydantic_extra__ is None
        assert made == reference
    other = await LLMClientRequest.objects.create(llm_client=client, request={})
    assert other.__pydantic_private__ is not made.__pydantic_private__
    for key, value in (made.__pydantic_private__ or {}).items():
        if isinstance(value, dict):  # mutable state is never shared between documents
            assert value is not (other.__pydantic_private__ or {})[key]
    made.session_key = "changed"
    await made.save()
    assert (await LLMClientRequest.objects.get(pk=made.id)).session_key == "changed"
