"""Helpers shared by the recorder's test modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bson import ObjectId

from llmreq_mongo import LLMClientRequest


async def wait_until(condition: Callable[[], bool], *, seconds: float = 30.0) -> None:
    """Poll ``condition`` on the event loop; fail the test if it never holds."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not hold in time")


async def stored_ids(session_key: str) -> list[ObjectId]:
    """The ids stored for a session, in ``_id`` order."""
    coll = LLMClientRequest.get_pymongo_collection()
    cursor = coll.find({"session_key": {"$eq": session_key}}, projection={"_id": 1}).sort("_id", 1)
    return [doc["_id"] async for doc in cursor]
