"""Index-shaped filters shared by sessions, analytics and rollups.

The filters are split in two ``$match`` stages: the first holds only what an
index serves (``session_key`` or ``llm_client_id`` as a plain equality, then a
``created_at`` range), the second everything else (dropping aggregation
records, a client when a session already leads). MongoDB merges consecutive
``$match`` stages, so the two are one query there; the embedded engine's
planner uses an index only for a filter of that first shape, so the split
lets it use one too (docs/embedded-engine.md, §14). Plain equality is safe because every
value is type-checked first: a ``str`` or an ``ObjectId`` is never an operator.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from bson import ObjectId

from llmreq_mongo._checks import a_type, check_text
from llmreq_mongo.errors import InvalidInput

from .payload import escape_key

__all__ = [
    "RAW_ONLY",
    "payload_path",
    "scoped_match",
]

#: The residual condition that keeps aggregation records out of every count.
RAW_ONLY: dict[str, Any] = {"is_aggregation": {"$ne": True}}

_MAX_PATH = 200
_MAX_SEGMENTS = 20
_SPLIT = re.compile(r"__|\.")


def payload_path(path: Any, *, name: str = "group_by") -> str:
    """The stored path of a caller-given field inside the payload (``"model"``).

    Segments are separated by ``.`` or ``__``; each is escaped as stored keys are.

    Raises:
        InvalidInput: not a string, empty segments, ``$`` or NUL anywhere, too long.
    """
    if not isinstance(path, str):
        raise InvalidInput(f"{name} must be a string path such as 'model', got {a_type(path)}")
    if not path or len(path) > _MAX_PATH:
        raise InvalidInput(f"{name} must be 1 to {_MAX_PATH} characters long")
    if "$" in path or "\x00" in path:
        raise InvalidInput(f"{name} {path!r} may not contain '$' or NUL; name a payload field")
    check_text(name, path)
    segments = _SPLIT.split(path)
    if any(not s for s in segments) or len(segments) > _MAX_SEGMENTS:
        raise InvalidInput(
            f"{name} {path!r} must be field names joined by '.' or '__' "
            f"(at most {_MAX_SEGMENTS}), with no empty segment"
        )
    return ".".join(["request", *(escape_key(s) for s in segments)])


def scoped_match(
    *,
    session_key: str | None = None,
    client_id: ObjectId | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The two ``$match`` stages selecting raw requests (see the module docstring)."""
    window: dict[str, Any] = {}
    if since is not None:
        window["$gte"] = since
    if until is not None:
        window["$lt"] = until
    first: dict[str, Any] = {}
    residual: dict[str, Any] = {}
    if session_key is not None:
        first["session_key"] = session_key
        if client_id is not None:
            residual["llm_client_id"] = client_id
    elif client_id is not None:
        first["llm_client_id"] = client_id
    if window:
        first["created_at"] = window
    residual.update(RAW_ONLY)
    residual.update(extra or {})
    return [{"$match": first}, {"$match": residual}]
