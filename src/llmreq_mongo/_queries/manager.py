"""The per-model ``objects`` manager, as in Django, and the descriptor that binds it.

A manager starts query chains (``Model.objects.filter(...)``) and holds the
operations that are not queries (``create``, ``get_or_create``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .queryset import QuerySet

if TYPE_CHECKING:
    from llmreq_mongo._documents.base import TimestampedDocument

__all__ = ["Manager", "ManagerDescriptor"]

D = TypeVar("D", bound="TimestampedDocument")


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
