"""Aliases of the types public signatures take, so a signature says what it accepts.

They only name types: nothing here runs a check (that is :mod:`._checks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, Union

from beanie import Link
from bson import ObjectId

if TYPE_CHECKING:
    from llmreq_mongo._documents import LLMClient

__all__ = ["ClientRef", "SavedClient"]

#: A client named in a query: the saved document, a link to it, or its id
#: (an ``ObjectId`` or its 24-character hex string).
ClientRef: TypeAlias = Union["LLMClient", "Link[LLMClient]", ObjectId, str]

#: A client a new record is stored against: the saved document or a link to it.
SavedClient: TypeAlias = Union["LLMClient", "Link[LLMClient]"]
