"""Lazy, chainable queries: ``QuerySet``.

A ``QuerySet`` is immutable: ``filter``, ``exclude``, ``order_by``, ``limit``
and slicing return a new one, and nothing touches the database until it is
awaited through ``to_list()``, ``count()``, ``first()`` and the like or
iterated with ``async for``. Lookups are translated, and bad ones refused,
when the ``QuerySet`` is built, never when it runs.
"""

from __future__ import annotations

import types
import typing
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from llmreq_mongo._checks import INT64_MAX, a_type, check_bool, check_count, check_int
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
from .values import ValuesQuerySet, row_builder

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

    __slots__ = ("_clauses", "_empty", "_limit", "_skip", "_sort", "_tiebreak", "model")

    def __init__(
        self,
        model: type[D],
        *,
        clauses: tuple[Mapping[str, Any], ...] = (),
        sort: Sort = (),
        limit: int = 0,
        skip: int = 0,
        empty: bool = False,
        tiebreak: bool = False,
    ) -> None:
        self.model = model
        self._clauses = clauses
        self._sort = sort
        self._limit = limit
        self._skip = skip
        # A slice such as [5:5]: matches nothing, without asking the server.
        self._empty = empty
        # Set by ``for_session``: every order it is given ends with ``_id``.
        self._tiebreak = tiebreak

    def _clone(self, **changes: Any) -> QuerySet[D]:
        state: dict[str, Any] = {
            "clauses": self._clauses,
            "sort": self._sort,
            "limit": self._limit,
            "skip": self._skip,
            "empty": self._empty,
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
        """Return at most ``n`` documents (after a slice's start, if any)."""
        return self._clone(limit=_at_most_int64("limit", check_int("limit", n, minimum=1)))

    @overload
    def __getitem__(self, key: slice) -> QuerySet[D]: ...
    @overload
    def __getitem__(self, key: int) -> Coroutine[Any, Any, D]: ...
    def __getitem__(self, key: slice | int) -> QuerySet[D] | Coroutine[Any, Any, D]:
        """``qs[20:30]``: a window of the query; ``await qs[5]``: one document.

        Slices use MongoDB's ``skip`` and ``limit``: a deep slice costs what
        skipping that many documents costs, and documents inserted between
        two slices can shift them; ``page()`` has neither problem. A query
        without ``order_by`` is ordered by ``_id`` when sliced, so
        consecutive slices do not overlap. Slicing a slice narrows it.

        Raises:
            InvalidInput: a negative index or bound, a step, or not an int.
            DoesNotExist: ``await qs[i]`` with fewer than ``i + 1`` documents
                (a ``LookupError``, as ``IndexError`` is).
        """
        if isinstance(key, slice):
            if key.step is not None:
                raise InvalidInput("a QuerySet slice takes no step; use [start:stop]")
            start = 0 if key.start is None else _index("a slice start", key.start)
            stop = None if key.stop is None else _index("a slice stop", key.stop)
            return self._window(start, stop)
        index = _index("an index", key)
        return self._window(index, index + 1)._at(index)

    def _window(self, start: int, stop: int | None) -> QuerySet[D]:
        """The documents ``start`` to ``stop`` (exclusive) of this query's own window."""
        begin = self._skip + start
        ends = [self._skip + self._limit] if self._limit else []
        if stop is not None:
            ends.append(self._skip + stop)
        end = min(ends) if ends else None
        sort = self._sort or (("_id", 1),)
        if end is not None and end <= begin:
            return self._clone(sort=sort, skip=begin, limit=0, empty=True)
        return self._clone(sort=sort, skip=begin, limit=0 if end is None else end - begin)

    async def _at(self, index: int) -> D:
        found = await self.first()
        if found is None:
            raise self.model.DoesNotExist(
                f"no {self.model.__name__} at index {index} of this query: it holds fewer "
                f"than {index + 1}"
            )
        return found

    def values(self, *fields: str) -> ValuesQuerySet[dict[str, Any]]:
        """The matching documents as plain dicts of the named fields, as in Django.

        Fields are named as in lookups: ``"session_key"``, ``"id"``/``"pk"``,
        ``"llm_client"`` (its id), payload paths such as ``"request__model"``
        (None where the payload lacks it). Without fields: every field, the
        link as its id. Values are as stored: ids as ``ObjectId``, times as
        aware UTC datetimes, payloads as plain JSON.

        Example::

            rows = await LLMClientRequest.objects.filter(session_key="abc").values(
                "id", "request__model"
            ).to_list()   # [{"id": ObjectId(...), "request__model": "gpt-4o"}, ...]

        Raises:
            InvalidLookup: an unknown field.
        """
        build = row_builder(self.model, fields, shape="dict")
        return ValuesQuerySet(self, build)

    def values_list(self, *fields: str, flat: bool = False) -> ValuesQuerySet[Any]:
        """Like ``values()``, as tuples in the order of ``fields``; ``flat`` for one field alone.

        Example::

            keys = await LLMClientRequest.objects.values_list("session_key", flat=True).to_list()

        Raises:
            InvalidLookup: an unknown field.
            InvalidInput: ``flat=True`` with other than one field.
        """
        check_bool("flat", flat)
        if flat and len(fields) != 1:
            raise InvalidInput(
                f"values_list(flat=True) takes exactly one field, got {len(fields)}; "
                "drop flat for tuples"
            )
        build = row_builder(self.model, fields, shape="flat" if flat else "tuple")
        return ValuesQuerySet(self, build)

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

    def _find(
        self,
        *,
        sort: Sort | None = None,
        limit: int | None = None,
        projection: Mapping[str, Any] | None = None,
        batch_size: int = 0,
    ) -> Any:
        order = self._sort if sort is None else sort
        return self.model.get_pymongo_collection().find(
            self.query,
            projection=projection,
            sort=list(order) or None,
            skip=self._skip,
            limit=self._limit if limit is None else limit,
            batch_size=batch_size,
        )

    async def _raw_list(self, projection: Mapping[str, Any] | None = None) -> list[Any]:
        if self._empty:
            return []
        with storage_errors(f"read {self.model.__name__} documents"):
            raw: list[Any] = await self._find(projection=projection).to_list(None)
        return raw

    async def _raw_stream(
        self, projection: Mapping[str, Any] | None = None, batch_size: int = 0
    ) -> AsyncIterator[Any]:
        if self._empty:
            return
        with storage_errors(f"read {self.model.__name__} documents"):
            cursor = self._find(projection=projection, batch_size=batch_size)
            try:
                async for doc in cursor:
                    yield doc
            finally:
                await cursor.close()

    async def to_list(self) -> list[D]:
        """All matching documents, in order."""
        return [self.model.from_mongo(doc) for doc in await self._raw_list()]

    async def __aiter__(self) -> AsyncIterator[D]:
        async for doc in self._raw_stream():
            yield self.model.from_mongo(doc)

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
        async for doc in self._raw_stream(batch_size=batch_size):
            yield self.model.from_mongo(doc)

    def _page_plan(
        self, size: Any, after: Any
    ) -> tuple[list[tuple[str, int]], bytes, list[dict[str, Any]]]:
        """Check the arguments of ``page`` and build its pipeline (no I/O)."""
        check_count("size", size, maximum=MAX_PAGE_SIZE)
        if self._limit or self._skip or self._empty:
            raise InvalidInput(
                "page() pages through the whole query; drop limit() or the slice and set size"
            )
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
        """The number of matching documents (within ``limit`` and a slice)."""
        if self._empty:
            return 0
        options: dict[str, Any] = {}
        if self._skip:
            options["skip"] = self._skip
        if self._limit:
            options["limit"] = self._limit
        with storage_errors(f"count {self.model.__name__} documents"):
            coll = self.model.get_pymongo_collection()
            return int(await coll.count_documents(self.query, **options))

    async def exists(self) -> bool:
        """Whether any document matches (within a slice)."""
        return bool(await self._raw_edge(last=False, projection={"_id": 1}))

    async def first(self) -> D | None:
        """The first document in order (by ``_id`` when unordered), or None."""
        rows = await self._raw_edge(last=False)
        return self.model.from_mongo(rows[0]) if rows else None

    async def last(self) -> D | None:
        """The last document in order (by ``_id`` when unordered), or None.

        On a limited or sliced query, the last document of that window.
        """
        rows = await self._raw_edge(last=True)
        return self.model.from_mongo(rows[0]) if rows else None

    async def _raw_edge(
        self, *, last: bool, projection: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """The first (or last) raw document of this query's window, as a list of 0 or 1."""
        if self._empty:
            return []
        order = self._sort or (("_id", 1),)
        reverse = tuple((path, -direction) for path, direction in order)
        with storage_errors(f"read {self.model.__name__} documents"):
            if not last:
                raw: list[Any] = await self._find(
                    sort=order, limit=1, projection=projection
                ).to_list(1)
            elif not (self._skip or self._limit):
                raw = await self._find(sort=reverse, limit=1, projection=projection).to_list(1)
            else:
                # The window is cut in the query's own order, then its end is taken.
                stages: list[dict[str, Any]] = [{"$match": self.query}, {"$sort": dict(order)}]
                if self._skip:
                    stages.append({"$skip": self._skip})
                if self._limit:
                    stages.append({"$limit": self._limit})
                stages += [{"$sort": dict(reverse)}, {"$limit": 1}]
                if projection:
                    stages.append({"$project": dict(projection)})
                cursor = await self.model.get_pymongo_collection().aggregate(stages)
                raw = await cursor.to_list(1)
        return raw

    async def get(self, **lookups: Any) -> D:
        """The one document matching; raises ``DoesNotExist`` or ``MultipleObjectsReturned``."""
        qs = self.filter(**lookups)
        if qs._empty:
            raw: list[Any] = []
        else:
            with storage_errors(f"read {self.model.__name__} documents"):
                raw = await qs._find(limit=min(qs._limit or 2, 2)).to_list(2)
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
        if self._limit or self._skip or self._empty:
            raise InvalidInput(f"cannot {action} a limited or sliced query; filter instead")

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


def _index(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} of a QuerySet must be an int, got {a_type(value)}")
    if value < 0:
        raise InvalidInput(
            f"{what} of a QuerySet cannot be negative ({value}): MongoDB has no count from "
            "the end; reverse order_by() and slice from the start"
        )
    return _at_most_int64(f"{what} of a QuerySet", value)


def _at_most_int64(what: str, value: int) -> int:
    if value > INT64_MAX:
        raise InvalidInput(
            f"{what} must be at most {INT64_MAX:,} (MongoDB's skip and limit are 64-bit "
            f"integers), got {value}"
        )
    return value


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
