"""The capture's JSON decoder gives exactly what ``json.loads`` gives, or fails as it fails.

A request body (``parse_json_body``: the same decoder, falling back to ``json``
with ``NaN`` and ``Infinity`` refused) reads as that strict reading reads it.
Results are compared by ``repr``, which tells ``1`` from ``1.0`` and ``True``
and keeps key order; a refusal must be the same error with the same message.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmreq_mongo._capture.decode import loads, loads_plain
from llmreq_mongo._queries import MAX_NESTING, checked_payload, is_plain, is_plain_json_text
from llmreq_mongo.integrations.asgi import parse_json_body

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too: orjson would read those as floats
    st.floats(),  # NaN and the infinities too: orjson refuses them
    st.text(),  # lone surrogates too: orjson refuses their escapes
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


# -- request bodies ----------------------------------------------------------


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict(body: bytes) -> Any:
    """The reading ``parse_json_body`` must match: ``json`` with NaN and Infinity refused."""
    if not body.strip():
        raise ValueError("the body is empty")
    text = body.decode(json.detect_encoding(body), "surrogatepass")
    try:
        return json.loads(text, parse_constant=_refuse)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def check_request_body(body: bytes) -> None:
    """``parse_json_body(body)`` gives what :func:`strict` gives, or raises its error."""
    try:
        expected = strict(body)
    except ValueError as refused:
        with pytest.raises(type(refused), match=f"^{re.escape(str(refused))}$"):
            parse_json_body(body)
        return
    assert repr(parse_json_body(body)) == repr(expected)


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans(), st.sampled_from(["utf-8", "utf-16", "utf-32-le"]))
def test_any_body_reads_as_the_strict_reading_reads_it(
    value: Any, ascii_only: bool, encoding: str
) -> None:
    check_request_body(json.dumps(value, ensure_ascii=ascii_only).encode(encoding, "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_read_or_fail_as_with_the_strict_reading(body: bytes) -> None:
    check_request_body(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"n": 100000000000000000000}',  # over 64 bits: exact, not a float
        b'{"n": 9223372036854775807, "m": -9223372036854775808}',
        b'{"x": NaN}',
        b'{"x": -Infinity}',
        b'{"x": 1e400}',  # json reads infinity; orjson refuses, so json decides
        b'"\\ud800"',
        b'{"a": 1, "a": 2}',
        b"\xef\xbb\xbf{}",  # a UTF-8 BOM
        b'{"a": 1} trailing',
        b"\xff\xfe\x00",
        b"[" * 100_000,  # nested beyond any reading
        b" \n",
    ],
    ids=lambda body: repr(body[:24]),
)
def test_the_edges_of_a_request_body(body: bytes) -> None:
    check_request_body(body)


def test_a_body_too_deeply_nested_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json_body(b"[" * 100_000 + b"]" * 100_000)


# -- loads_plain: the decoder vouches for a body, and only when it is sure -----------

keys = st.one_of(st.text(), st.sampled_from(["%", "a%b", "$ref", "a.b", "\x00", "_id"]))
plain_candidates = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(keys, inner)),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(plain_candidates, st.booleans())
def test_a_vouched_body_is_one_the_walks_pass_as_it_is(value: Any, ascii_only: bool) -> None:
    try:
        text = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, unescaped: not JSON text at all
        return
    try:
        expected = json.loads(text)
    except ValueError:
        return
    decoded, plain = loads_plain(text)
    assert repr(decoded) == repr(expected)  # the same reading as loads()
    if plain:
        # No walk is made for it: each walk would have passed it unchanged.
        assert is_plain(decoded)
        checked, _ = checked_payload(decoded)
        assert repr(checked) == repr(decoded)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a%b": 1}',  # a key that is stored escaped
        b'{"a": "100%"}',  # the same byte in a value: walked, to be sure
        b'{"a\\u0025b": 1}',  # the same, escaped
        b'{"a\\u0000": 1}',  # a NUL in a key, which no document holds
        b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1),  # deeper than stored
        b'{"n": 12345678901234567890}',  # over 64 bits: json.loads reads it
        b'{"x": NaN}',  # the same
    ],
)
def test_what_the_decoder_does_not_vouch_for(text: bytes) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    decoded, plain = loads_plain(text)
    assert not plain
    assert repr(decoded) == repr(expected)


def test_a_plain_body_is_vouched_for() -> None:
    text = b'{"id": "r", "choices": [{"message": {"content": "ok."}}], "$schema": "x"}'
    assert loads_plain(text) == (json.loads(text), True)
    assert is_plain_json_text(b"[" * MAX_NESTING + b"]" * MAX_NESTING)


pieces = st.sampled_from([b"{", b"[", b"]", b"%", b"\\", b"u", b"0", b"\\u00", b'"a":', b"x" * 40])


@settings(max_examples=400, deadline=None)
@given(st.lists(pieces, max_size=800).map(b"".join))
@example(b"{" * 100 + b"[" * (MAX_NESTING - 100))  # at the limit, both kinds counted
@example(b"{" * 100 + b"[" * (MAX_NESTING - 99))  # one past it
@example(b"x" * MAX_NESTING + b"%")  # a short text is still searched
def test_the_text_check_reads_the_bytes_as_written(text: bytes) -> None:
    # Its faster searches (memchr for one byte, deletion to count brackets)
    # say exactly what the plain reading of its rules says.
    expected = (
        b"%" not in text
        and b"\\u00" not in text
        and text.count(b"{") + text.count(b"[") <= MAX_NESTING
    )
    assert is_plain_json_text(text) is expected
