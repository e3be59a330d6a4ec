"""``Instant``: how the history API writes a time, ``2026-03-01T22:30:19.970Z``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

from llmreq_mongo._time import to_utc_ms

__all__ = ["Instant"]


def _iso_ms(value: dt.datetime) -> str:
    return to_utc_ms(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: A datetime written in UTC to the millisecond, ``2026-03-01T22:30:19.970Z``; the schema
#: stays an RFC 3339 ``date-time`` string.
Instant = Annotated[
    dt.datetime,
    PlainSerializer(_iso_ms, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2026-03-01T22:30:19.970Z"]}
    ),
]
