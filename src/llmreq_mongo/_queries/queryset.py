"""Lazy, chainable queries (``QuerySet``) and the per-model ``objects`` manager.

A ``QuerySet`` is immutable: ``filter``, ``exclude``, ``order_by`` and
``limit`` return a new one, and nothing touches the database until it is
awaited through ``to_list()``, ``count()``, ``first()`` and the like or
iterated with ``async for``. Lookups are translated, and bad ones refused,
when the ``QuerySet`` is built, never when it runs.
"""

from __future__ import annotations

import types
import typing
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llmreq_mongo._checks import check_count, check_int
from llmreq_mongo.errors import InvalidInput, InvalidLookup, storage_errors

from .lookups import resolve_field, translate_lookups
from .pagination import (
    MAX_PAGE_SIZE,
    Page,
    cursor_values,
    decode_cursor,
    encode_cursor,
    fingerprint,
    keyset_pipeline,
    with_tiebreak,
)

if TYPE_CHECKING:
    from llmreq_mongo._documents.base import TimestampedDocument

__all__ = ["QuerySet"]

D = TypeVar("D", bound="TimestampedDocument")
Sort = tuple[tuple[str, int], ...]


class QuerySet(Generic[D]):
    """A lazy query over one document class.

    Example::

        recent = (
            LLMClientRequest.objects.filter(session_key="abc123")
            .order_by("-created_at")
            .limit(20)
        )
        async for req in recent:
            print(req.created_at, req.request)
    """

    __slots__ = ("_clauses", "_limit", "_sort", "_tiebreak", "model")

    def __init__(
        self,
        model: type[D],
        *,
        clauses: tuple[Mapping[str, Any], ...] = (),
        sort: Sort = (),
        limit: int = 0,
        tiebreak: bool = False,
    ) -> None:
        self.model = model
        self._clauses = clauses
        self._sort = sort
        self._limit = limit
        # Set by ``for_session``: every order it is given ends with ``_id``.
        self._tiebreak = tiebreak

    def _clone(self, **changes: Any) -> QuerySet[D]:
        state: dict[str, Any] = {
            "clauses": self._clauses,
            "sort": self._sort,
            "limit": self._limit,
            "tiebreak": self._tiebreak,
        }
        state.update(changes)
        return type(self)(self.model, **state)

    # -- building -------------------------------------------------------------

    def all(self) -> QuerySet[D]:
        """A copy of this query."""
        return self._clone()

    def filter(self, **lookups: Any) -> QuerySet[D]:
        """Keep the documents matching every lookup (``field__op=value``)."""
        if not lookups:
            return self._clone()
        clause = translate_lookups(self.model, lookups)
        return self._clone(clauses=(*self._clauses, clause))

    def exclude(self, **lookups: Any) -> QuerySet[D]:
        """Drop the documents matching all of the lookups together."""
        if not lookups:
            return self._clone()
        clause = {"$nor": [translate_lookups(self.model, lookups)]}
        return self._clone(clauses=(*self._clauses, clause))

    def order_by(self, *fields: str) -> QuerySet[D]:
        """Order by fields, ``"-field"`` for descending; replaces any earlier order."""
        sort: list[tuple[str, int]] = []
        for field in fields:
            if not isinstance(field, str) or not field.lstrip("-"):
                raise InvalidLookup(f"order_by takes field names, got {field!r}")
            direction = -1 if field.startswith("-") else 1
            _, path = resolve_field(self.model, field.lstrip("-"))
            sort.append((path, direction))
        if self._tiebreak and sort:
            sort = with_tiebreak(sort)
        return self._clone(sort=tuple(sort))

    def limit(self, n: int) -> QuerySet[D]:
        """Return at most ``n`` documents."""
        return self._clone(limit=check_int("limit", n, minimum=1))

    @property
    def query(self) -> dict[str, Any]:
        """The MongoDB filter this query sends."""
        if not self._clauses:
            return {}
        if len(self._clauses) == 1:
            return dict(self._clauses[0])
        return {"$and": [dict(c) for c in self._clauses]}

    @property
    def sort(self) -> list[tuple[str, int]]:
        """The sort this query sends, as PyMongo takes it."""
        return list(self._sort)

    # -- running --------------------------------------------------------------

    def _find(self, *, sort: Sort | None = None, limit: int | None = None) -> Any:
        order = self._sort if sort is None else sort
        return self.model.get_pymongo_collection().find(
            self.query,
            sort=list(order) or None,
            limit=self._limit if limit is None else limit,
        )

    async def to_list(self) -> list[D]:
        """All matching documents, in order."""
        with storage_errors(f"read {self.model.__name__} documents"):
            raw = await self._find().to_list(None)
        return [self.model.from_mongo(doc) for doc in raw]

    async def __aiter__(self) -> AsyncIterator[D]:
        with storage_errors(f"read {self.model.__name__} documents"):
            cursor = self._find()
            try:
                async for doc in cursor:
                    yield self.model.from_mongo(doc)
            finally:
                await cursor.close()

    def iterator(self, *, batch_size: int = 1000) -> AsyncIterator[D]:
        """Stream the matching documents, ``batch_size`` at a time from the server.

        Memory stays constant however many documents match: the driver holds
        one batch at a time.

        Example::

            async for req in LLMClientRequest.objects.for_session("abc").iterator():
                ...

        Raises:
            InvalidInput: ``batch_size`` is not an integer in 1..100,000.
        """
        check_count("batch_size", batch_size, maximum=100_000)
        return self._stream(batch_size)

    async def _stream(self, batch_size: int) -> AsyncIterator[D]:
        with storage_errors(f"read {self.model.__name__} documents"):
            cursor = self.model.get_pymongo_collection().find(
                self.query,
                sort=list(self._sort) or None,
                limit=self._limit,
                batch_size=batch_size,
            )
            try:
                async for doc in cursor:
                    yield self.model.from_mongo(doc)
            finally:
                await cursor.close()

    def _page_plan(
        self, size: Any, after: Any
    ) -> tuple[list[tuple[str, int]], bytes, list[dict[str, Any]]]:
        """Check the arguments of ``page`` and build its pipeline (no I/O)."""
        check_count("size", size, maximum=MAX_PAGE_SIZE)
        if self._limit:
            raise InvalidInput("page() pages through the whole query; drop limit() and set size")
        sort = with_tiebreak(self._sort)
        query = self.query
        collection = self.model.get_collection_name()
        print_ = fingerprint(collection, query, sort)
        values = None if after is None else decode_cursor(after, print_, sort)
        pipeline = keyset_pipeline(
            query, sort, values, limit=size + 1, nullable=_nullable_paths(self.model, sort)
        )
        return sort, print_, pipeline

    async def page(self, size: int = 50, after: str | None = None) -> Page[D]:
        """One page of this query, in its order, continuing after a cursor.

        Keyset pagination: the page starts right after the last item of the
        previous one, by the values of its sort keys (``_id`` is added as the
        final tiebreak; an unordered query pages by ``_id``). It never skips,
        so a deep page costs what the first does. Records inserted between
        calls are never repeated, and one that sorts after the cursor (every
        new request, in a chronological order) is not missed. Order by
        fields that hold one type (or null): MongoDB compares values of
        different types by type first.

        Example::

            qs = LLMClientRequest.objects.for_session("abc123")
            page = await qs.page(size=50)
            while page.next_cursor:
                page = await qs.page(size=50, after=page.next_cursor)

        Args:
            size: how many items, 1 to 1,000.
            after: the ``next_cursor`` of the previous page; None for the first.

        Raises:
            InvalidInput: ``size`` is out of range, or the query has a limit.
            InvalidCursor: ``after`` was altered, or comes from another query.
        """
        sort, print_, pipeline = self._page_plan(size, after)
        with storage_errors(f"read a page of {self.model.__name__} documents"):
            cursor = await self.model.get_pymongo_collection().aggregate(pipeline)
            raw = await cursor.to_list(size + 1)
        next_cursor = None
        if len(raw) > size:
            raw = raw[:size]
            next_cursor = encode_cursor(print_, sort, cursor_values(raw[-1], sort))
        return Page([self.model.from_mongo(doc) for doc in raw], next_cursor)

    async def count(self) -> int:
        """The number of matching documents (capped by ``limit``)."""
        with storage_errors(f"count {self.model.__name__} documents"):
            coll = self.model.get_pymongo_collection()
            if self._limit:
                return int(await coll.count_documents(self.query, limit=self._limit))
            return int(await coll.count_documents(self.query))

    async def exists(self) -> bool:
        """Whether any document matches."""
        with storage_errors(f"read {self.model.__name__} documents"):
            doc = await self.model.get_pymongo_collection().find_one(
                self.query, projection={"_id": 1}
            )
        return doc is not None

    async def first(self) -> D | None:
        """The first document in order (by ``_id`` when unordered), or None."""
        rows = await self._one(self._sort or (("_id", 1),))
        return rows[0] if rows else None

    async def last(self) -> D | None:
        """The last document in order (by ``_id`` when unordered), or None."""
        order = tuple((path, -direction) for path, direction in self._sort)
        rows = await self._one(order or (("_id", -1),))
        return rows[0] if rows else None

    async def _one(self, sort: Sort) -> list[D]:
        with storage_errors(f"read {self.model.__name__} documents"):
            raw = await self._find(sort=sort, limit=1).to_list(1)
        return [self.model.from_mongo(doc) for doc in raw]

    async def get(self, **lookups: Any) -> D:
        """The one document matching; raises ``DoesNotExist`` or ``MultipleObjectsReturned``."""
        qs = self.filter(**lookups)
        with storage_errors(f"read {self.model.__name__} documents"):
            raw = await qs._find(limit=2).to_list(2)
        if not raw:
            raise self.model.DoesNotExist(
                f"{self.model.__name__} matching {qs.query} does not exist",
                model=self.model,
                lookups=lookups,
            )
        if len(raw) > 1:
            raise self.model.MultipleObjectsReturned(
                f"get() found more than one {self.model.__name__} matching {qs.query}; "
                "narrow the lookups or use filter()",
                model=self.model,
                lookups=lookups,
            )
        return self.model.from_mongo(raw[0])

    def _refuse_limited(self, action: str) -> None:
        if self._limit:
            raise InvalidInput(f"cannot {action} a limited query; filter instead")

    async def update(self, **fields: Any) -> int:
        """Set fields on every matching document; returns how many matched.

        ``updated_at`` is refreshed; ``created_at`` and ``id`` cannot be set.
        An update of a shard key field (``session_key``, ``llm_client``) is
        sent record by record, each by its full shard key, as a sharded
        cluster requires (docs/scaling.md).
        """
        self._refuse_limited("update")
        changes = self.model._encode_update(fields)
        with storage_errors(f"update {self.model.__name__} documents"):
            coll = self.model.get_pymongo_collection()
            if changes.keys() & self.model._shard_key_fields:
                return await _update_each(coll, self.query, changes, self.model._shard_key_fields)
            result = await coll.update_many(self.query, {"$set": changes})
        return int(result.matched_count)

    async def delete(self) -> int:
        """Delete every matching document (and what cascades from it); returns how many."""
        self._refuse_limited("delete")
        return await self.model._delete_matching(self.query)


async def _update_each(
    coll: Any, query: dict[str, Any], changes: dict[str, Any], key_fields: frozenset[str]
) -> int:
    """``$set`` ``changes`` one record at a time, each found by its full shard key.

    MongoDB changes a shard key value only in an update aimed at one record
    by equality on its full shard key, sent as a retryable write (PyMongo's
    ``update_one`` is one); ``update_many`` cannot. The records are listed
    first, so an update that moves one in the scan never meets it twice.
    """
    projection = dict.fromkeys(key_fields, 1)
    found = await coll.find(query, projection=projection).to_list(None)
    matched = 0
    for doc in found:
        key = {"_id": doc["_id"], **{name: doc.get(name) for name in sorted(key_fields)}}
        result = await coll.update_one({"$and": [key, query]} if query else key, {"$set": changes})
        matched += int(result.matched_count)
    return matched


def _nullable_paths(model: type[Any], sort: Sort | list[tuple[str, int]]) -> frozenset[str]:
    """The sort paths that may hold null: all but ``_id`` and fields typed without None."""
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    nullable: set[str] = set()
    for path, _ in sort:
        if path == "_id":
            continue
        info = fields.get(path)
        if info is None or _admits_none(info.annotation):
            nullable.add(path)
    return frozenset(nullable)


def _admits_none(annotation: Any) -> bool:
    if annotation is Any or annotation is None or annotation is type(None):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _admits_none(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(_admits_none(arg) for arg in typing.get_args(annotation))
    return False
