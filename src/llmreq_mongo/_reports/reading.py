"""Running a report's pipeline, reading the group values in its rows, and naming clients."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bson import ObjectId

from llmreq_mongo._documents import LLMClient, LLMClientRequest
from llmreq_mongo._queries import decode_payload
from llmreq_mongo.errors import storage_errors

__all__ = ["client_names_of", "group_value", "run_report"]


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


async def client_names_of(ids: Iterable[ObjectId]) -> dict[ObjectId, str]:
    """The names of the clients ``ids`` (those that still exist), by id; one query."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    with storage_errors("look up LLM clients"):
        cursor = LLMClient.get_pymongo_collection().find({"_id": {"$in": wanted}}, {"name": 1})
        return {doc["_id"]: doc["name"] async for doc in cursor}
