"""Durations and points in time as the command line reads them (no server needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from llmreq_mongo._cli._durations import (
    format_duration,
    format_time,
    parse_duration,
    parse_time,
)
from llmreq_mongo.errors import InvalidInput

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 10, 12, 0, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 7776000),
        ("12h", 43200),
        ("30m", 1800),
        ("45s", 45),
        ("2w", 1209600),
        ("1h30m", 5400),
        (" 7D ", 604800),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "90", "d", "1.5h", "-1d", "1y", "1 d", "0s", "0d0h"])
def test_bad_durations(text):
    with pytest.raises(InvalidInput):
        parse_duration(text)


def test_format_duration():
    assert format_duration(7776000) == "90d"
    assert format_duration(1209600) == "14d"
    assert format_duration(5400) == "1h30m"
    assert format_duration(45) == "45s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T10:00:00Z", dt.datetime(2026, 3, 2, 10, tzinfo=UTC)),
        ("2026-03-02T12:00:00.123456+02:00", dt.datetime(2026, 3, 2, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2026-03-02", dt.datetime(2026, 3, 2, tzinfo=UTC)),
        ("7d", NOW - dt.timedelta(days=7)),
        ("now", NOW),
    ],
)
def test_times(text, expected):
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-02T10:00:00", "has no time zone"),
        ("2026-13-01", "is not a valid date"),
        ("yesterday", "is not a time"),
        ("0d", "is zero"),
    ],
)
def test_bad_times(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_time(text, what="--since", now=NOW)


def test_format_time():
    paris = dt.timezone(dt.timedelta(hours=1))
    assert format_time(dt.datetime(2026, 3, 2, 11, 0, 0, 123999, tzinfo=paris)) == (
        "2026-03-02T10:00:00.123Z"
    )
    assert format_time(dt.datetime(2026, 3, 2, 10, 0)) == "2026-03-02T10:00:00.000Z"
