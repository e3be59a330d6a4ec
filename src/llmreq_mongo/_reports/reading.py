"""Running a report's pipeline, and reading the group values in its rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmreq_mongo._documents import LLMClientRequest
from llmreq_mongo._queries import decode_payload
from llmreq_mongo.errors import storage_errors

__all__ = ["group_value", "run_report"]


async def run_report(pipeline: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """Every row ``pipeline`` gives over the requests; a failure is a ``StorageError``."""
    with storage_errors(f"compute {what}"):
        cursor = await LLMClientRequest.get_pymongo_collection().aggregate(pipeline)
        rows: list[dict[str, Any]] = await cursor.to_list(None)
    return rows


def group_value(key: Mapping[str, Any]) -> Any:
    """The ``group_by`` value of a row's ``_id`` (``g``), as the payload holds it."""
    # A missing payload field leaves the key out of the group's _id.
    return decode_payload(key.get("g"))
