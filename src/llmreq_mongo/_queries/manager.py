"""The per-model ``objects`` manager, as in Django, and the descriptor that binds it.

A manager starts query chains (``Model.objects.filter(...)``) and holds the
operations that are not queries (``create``, ``get_or_create``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llmreq_mongo._checks import a_type
from llmreq_mongo.errors import InvalidInput

from .pagination import Page
from .queryset import QuerySet
from .values import ValuesQuerySet

if TYPE_CHECKING:
    from llmreq_mongo._documents.base import TimestampedDocument

__all__ = ["Manager", "ManagerDescriptor"]

D = TypeVar("D", bound="TimestampedDocument")


class Manager(Generic[D]):
    """The ``objects`` entry point of a document class, as in Django.

    Every public ``QuerySet`` method is here too, run on every document
    (``Model.objects.first()`` is ``Model.objects.all().first()``); slice
    ``Model.objects.all()``. Its own operations are ``create`` and
    ``get_or_create``.
    """

    __slots__ = ("model",)

    def __init__(self, model: type[D]) -> None:
        self.model = model

    def all(self) -> QuerySet[D]:
        """Every document."""
        return QuerySet(self.model)

    # -- the QuerySet methods, on every document -------------------------------

    def filter(self, **lookups: Any) -> QuerySet[D]:
        """The documents matching every lookup."""
        return self.all().filter(**lookups)

    def exclude(self, **lookups: Any) -> QuerySet[D]:
        """The documents not matching the lookups together."""
        return self.all().exclude(**lookups)

    def order_by(self, *fields: str) -> QuerySet[D]:
        """Every document, in the given order."""
        return self.all().order_by(*fields)

    def limit(self, n: int) -> QuerySet[D]:
        """At most ``n`` documents."""
        return self.all().limit(n)

    def values(self, *fields: str) -> ValuesQuerySet[dict[str, Any]]:
        """Every document as a dict of the named fields (see ``QuerySet.values``)."""
        return self.all().values(*fields)

    def values_list(self, *fields: str, flat: bool = False) -> ValuesQuerySet[Any]:
        """Every document as a tuple of the named fields (see ``QuerySet.values_list``)."""
        return self.all().values_list(*fields, flat=flat)

    async def to_list(self) -> list[D]:
        """Every document."""
        return await self.all().to_list()

    def iterator(self, *, batch_size: int = 1000) -> AsyncIterator[D]:
        """Stream every document, ``batch_size`` at a time from the server."""
        return self.all().iterator(batch_size=batch_size)

    async def page(self, size: int = 50, after: str | None = None) -> Page[D]:
        """One page of every document, by ``_id`` (see ``QuerySet.page``)."""
        return await self.all().page(size, after)

    async def get(self, **lookups: Any) -> D:
        """The one document matching the lookups.

        Raises:
            DoesNotExist: none matches (``Model.DoesNotExist``).
            MultipleObjectsReturned: more than one matches.
        """
        return await self.all().get(**lookups)

    async def count(self) -> int:
        """The number of documents."""
        return await self.all().count()

    async def exists(self) -> bool:
        """Whether there is any document."""
        return await self.all().exists()

    async def first(self) -> D | None:
        """The first document by ``_id``, or None."""
        return await self.all().first()

    async def last(self) -> D | None:
        """The last document by ``_id``, or None."""
        return await self.all().last()

    async def update(self, **fields: Any) -> int:
        """Set fields on every document; returns how many (see ``QuerySet.update``)."""
        return await self.all().update(**fields)

    async def delete(self) -> int:
        """Delete every document (and what cascades from them); returns how many."""
        return await self.all().delete()

    # -- the manager's own ------------------------------------------------------

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

        As in Django: the new document gets the lookups without ``__`` in
        their name (``name="bot"``, not ``name__startswith="b"``; ``pk`` is
        ``id``), then ``defaults`` on top, so a field in both takes the value
        from ``defaults``; a callable default is called.

        Example::

            client, created = await LLMClient.objects.get_or_create(
                name="support-bot", defaults={"description": "answers tickets"}
            )

        Returns:
            The document, and whether it was created.

        Raises:
            InvalidInput: ``defaults`` is not a mapping, or a field is refused.
            MultipleObjectsReturned: more than one document matches.
            AlreadyExists: the new document collides with another on a
                unique key, and none matches the lookups.
        """
        if defaults is not None and not isinstance(defaults, Mapping):
            raise InvalidInput(
                f"defaults must be a mapping of field names to values, got {a_type(defaults)}"
            )
        try:
            return await self.get(**lookups), False
        except self.model.DoesNotExist:
            pass
        fields = {("id" if k == "pk" else k): v for k, v in lookups.items() if "__" not in k}
        for name, value in (defaults or {}).items():
            fields[name] = value() if callable(value) else value
        try:
            return await self.create(**fields), True
        except self.model.AlreadyExists:
            # Someone created it between our read and our insert; or the
            # defaults collide with another document, which is then the error.
            try:
                return await self.get(**lookups), False
            except self.model.DoesNotExist:
                pass
            raise


class ManagerDescriptor:
    """Makes ``Model.objects`` a :class:`Manager` bound to the class it is read from."""

    def __get__(self, instance: object, owner: type[D]) -> Manager[D]:
        if instance is not None:
            raise AttributeError(
                f"the manager is reached through the class ({owner.__name__}.objects), "
                "not through an instance"
            )
        return Manager(owner)
