"""Client names, as people type them, to documents and back."""

from __future__ import annotations

from bson import ObjectId

from llmreq_mongo._documents import LLMClient
from llmreq_mongo.errors import storage_errors

__all__ = ["client_by_name", "client_names", "name_of"]


async def client_by_name(name: str) -> LLMClient:
    """The client called ``name``.

    Raises:
        DoesNotExist: there is none (the message says how to list them).
    """
    client = await LLMClient.objects.filter(name=name).first()
    if client is None:
        raise LLMClient.DoesNotExist(
            f"no LLM client is named {name!r}; `llmreq clients` lists the clients"
        )
    return client


async def client_names() -> dict[ObjectId, str]:
    """Every client's name by id (clients are few; requests are many)."""
    coll = LLMClient.get_pymongo_collection()
    with storage_errors("read the LLM clients"):
        return {
            doc["_id"]: doc.get("name", "?") async for doc in coll.find({}, projection={"name": 1})
        }


def name_of(names: dict[ObjectId, str], client_id: object) -> str:
    """A client's name, or a marker for a request whose client is gone."""
    if isinstance(client_id, ObjectId) and client_id in names:
        return names[client_id]
    return f"(deleted client {client_id})"
