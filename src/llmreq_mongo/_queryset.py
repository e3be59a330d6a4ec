"""Lazy, chainable queries (``QuerySet``) and the per-model ``objects`` manager.

A ``QuerySet`` is immutable: ``filter``, ``exclude``, ``order_by`` and
``limit`` return a new one, and nothing touches the database until it is
awaited through ``to_list()``, ``count()``, ``first()`` and the like or
iterated with ``async for``. Lookups are translated, and bad ones refused,
when the ``QuerySet`` is built, never when it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pymongo.errors import PyMongoError

from ._lookups import resolve_field, translate_lookups
from .errors import InvalidInput, InvalidLookup, StorageError

if TYPE_CHECKING:
    from ._base import TimestampedDocument

__all__ = ["Manager", "ManagerDescriptor", "QuerySet", "storage_errors"]

D = TypeVar("D", bound="TimestampedDocument")
Sort = tuple[tuple[str, int], ...]


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Re-raise driver errors as :class:`StorageError` naming what failed."""
    try:
        yield
    except PyMongoError as exc:
        raise StorageError(f"could not {action}: {exc}") from exc


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

    __slots__ = ("_clauses", "_limit", "_sort", "model")

    def __init__(
        self,
        model: type[D],
        *,
        clauses: tuple[Mapping[str, Any], ...] = (),
        sort: Sort = (),
        limit: int = 0,
    ) -> None:
        self.model = model
        self._clauses = clauses
        self._sort = sort
        self._limit = limit

    def _clone(self, **changes: Any) -> QuerySet[D]:
        state: dict[str, Any] = {
            "clauses": self._clauses,
            "sort": self._sort,
            "limit": self._limit,
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
        return self._clone(sort=tuple(sort))

    def limit(self, n: int) -> QuerySet[D]:
        """Return at most ``n`` documents."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise InvalidInput(f"limit takes a positive integer, got {n!r}")
        return self._clone(limit=n)

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
                f"{self.model.__name__} matching {qs.query} does not exist"
            )
        if len(raw) > 1:
            raise self.model.MultipleObjectsReturned(
                f"get() found more than one {self.model.__name__} matching {qs.query}; "
                "narrow the lookups or use filter()"
            )
        return self.model.from_mongo(raw[0])

    def _refuse_limited(self, action: str) -> None:
        if self._limit:
            raise InvalidInput(f"cannot {action} a limited query; filter instead")

    async def update(self, **fields: Any) -> int:
        """Set fields on every matching document; returns how many matched.

        ``updated_at`` is refreshed; ``created_at`` and ``id`` cannot be set.
        """
        self._refuse_limited("update")
        changes = self.model._encode_update(fields)
        with storage_errors(f"update {self.model.__name__} documents"):
            result = await self.model.get_pymongo_collection().update_many(
                self.query, {"$set": changes}
            )
        return int(result.matched_count)

    async def delete(self) -> int:
        """Delete every matching document (and what cascades from it); returns how many."""
        self._refuse_limited("delete")
        return await self.model._delete_matching(self.query)


class Manager(Generic[D]):
    """The ``objects`` entry point of a document class, as in Django.

    Every ``QuerySet`` method is available here as the start of a chain.
    """

    __slots__ = ("model",)

    def __init__(self, model: type[D]) -> None:
        self.model = model

    def all(self) -> QuerySet[D]:
        """Every document."""
        return QuerySet(self.model)

    def filter(self, **lookups: Any) -> QuerySet[D]:
        """The documents matching every lookup."""
        return QuerySet(self.model).filter(**lookups)

    def exclude(self, **lookups: Any) -> QuerySet[D]:
        """The documents not matching the lookups together."""
        return QuerySet(self.model).exclude(**lookups)

    def order_by(self, *fields: str) -> QuerySet[D]:
        """Every document, in the given order."""
        return QuerySet(self.model).order_by(*fields)

    async def get(self, **lookups: Any) -> D:
        """The one document matching the lookups.

        Raises:
            DoesNotExist: none matches (``Model.DoesNotExist``).
            MultipleObjectsReturned: more than one matches.
        """
        return await QuerySet(self.model).get(**lookups)

    async def count(self) -> int:
        """The number of documents."""
        return await QuerySet(self.model).count()

    async def create(self, **fields: Any) -> D:
        """Validate, insert and return a new document.

        Raises:
            InvalidInput: a field is unknown or its value is refused; nothing
                is written.
        """
        return await self.model._create(fields)

    async def get_or_create(
        self, defaults: Mapping[str, Any] | None = None, **lookups: Any
    ) -> tuple[D, bool]:
        """The document matching ``lookups``, created from them and ``defaults`` if missing.

        Returns:
            The document, and whether it was created.
        """
        try:
            return await self.get(**lookups), False
        except self.model.DoesNotExist:
            pass
        try:
            return await self.create(**lookups, **(defaults or {})), True
        except self.model.AlreadyExists:
            # Someone created it between our read and our insert.
            return await self.get(**lookups), False


class ManagerDescriptor:
    """Makes ``Model.objects`` a :class:`Manager` bound to the class it is read from."""

    def __get__(self, instance: object, owner: type[D]) -> Manager[D]:
        if instance is not None:
            raise AttributeError(
                f"the manager is reached through the class ({owner.__name__}.objects), "
                "not through an instance"
            )
        return Manager(owner)
