"""The capture's JSON decoder gives exactly what ``json.loads`` gives, or fails as it fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmreq_mongo._capture.decode import loads

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too: orjson would read those as floats
    st.floats(),  # NaN and the infinities too: orjson refuses them
    st.text(),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(), inner)),
    max_leaves=30,
)


def check(text: str | bytes) -> None:
    """``loads(text)`` gives what ``json.loads`` gives, or raises the same error."""
    refused: ValueError | None = None
    try:
        expected = json.loads(text)
    except ValueError as exc:
        refused = exc
    if refused is None:
        # repr tells types apart (1, 1.0, True), keeps key order, writes each float
        # exactly (-0.0 too) and NaN as nan: equal reprs, the same value.
        assert repr(loads(text)) == repr(expected)
        return
    with pytest.raises(type(refused)) as info:
        loads(text)
    assert str(info.value) == str(refused)


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_any_document_reads_as_json_loads_reads_it(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    check(text)
    check(text.encode())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_reads_or_fails_as_with_json_loads(text: str) -> None:
    check(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 100000000000000000000}',  # over 64 bits: exact, not a float
        '{"n": 9223372036854775807, "m": -9223372036854775808}',
        '{"id": "1234567890123456789012", "n": 1}',  # a long run in a string
        "NaN",
        '{"x": Infinity}',
        "1e400",
        '"\\ud800"',
        '{"a": 1, "a": 2}',
        b"\xef\xbb\xbf{}",  # a UTF-8 BOM, which json.loads takes from bytes
        '{"a": 1} trailing',
        "",
    ],
)
def test_the_edges(text: str | bytes) -> None:
    check(text)
