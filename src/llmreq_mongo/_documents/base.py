"""``TimestampedDocument``: the abstract base of every document of ours.

It owns the two timestamps and the Django-style per-model exceptions. The
timestamps are timezone-aware UTC datetimes truncated to milliseconds, the
precision BSON keeps, so a document in memory after a write equals the one
read back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

from beanie import Document, Insert, Replace, Save, SaveChanges, Update, before_event
from beanie.odm.fields import ExpressionField
from beanie.odm.settings.document import DocumentSettings
from beanie.odm.utils.encoder import Encoder
from pydantic import Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticUndefined
from pymongo.errors import DuplicateKeyError
from typing_extensions import Self

from llmreq_mongo import errors
from llmreq_mongo._checks import check_storable, check_timestamps
from llmreq_mongo._queries import ManagerDescriptor
from llmreq_mongo._time import now_ms, to_utc_ms
from llmreq_mongo.errors import storage_errors

__all__ = ["TimestampedDocument"]


class _ScopedFindOne:
    """``find_one`` that, called on a document, adds the document's shard key to an ``_id`` filter.

    Beanie's ``save``, ``replace``, ``update`` and ``delete`` find their
    document with ``self.find_one({"_id": ...})``. On a sharded collection
    that write must carry the full shard key (an upsert is refused without
    it), so a call through an instance adds :meth:`_shard_key_filter`.
    Called on the class, it is Beanie's own ``find_one``.
    """

    def __get__(
        self, instance: TimestampedDocument | None, owner: type[TimestampedDocument]
    ) -> Any:
        find_one = super(TimestampedDocument, owner).find_one
        if instance is None:
            return find_one

        def scoped(*args: Any, **kwargs: Any) -> Any:
            if len(args) == 1 and isinstance(args[0], Mapping) and set(args[0]) <= _BY_ID:
                args = ({**args[0], **instance._shard_key_filter()},)
            return find_one(*args, **kwargs)

        return scoped


_BY_ID = frozenset({"_id", "revision_id"})


def _refusal(cls: type[Any], exc: ValidationError) -> errors.LLMReqError:
    """The error a document's constructor raises for ``exc``: a field check's own, if any."""
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, errors.LLMReqError):
            return cause
    return errors.InvalidInput(f"cannot create {cls.__name__}: {exc}")


class TimestampedDocument(Document):
    """A Beanie document with ``created_at`` and ``updated_at`` that manage themselves.

    ``created_at`` is set once, when the document is inserted, unless it was
    given (``objects.create(created_at=...)`` or the constructor: a backfill,
    with ``updated_at`` the same unless given too). ``updated_at``
    is refreshed by every write the library offers: ``insert``, ``save``,
    ``replace``, the manager's ``update``, and Beanie's ``set``/``inc``/
    ``update`` on a document. Both are indexed by :func:`llmreq_mongo.init`.

    Subclass it for documents of your own; each subclass gets its own
    ``DoesNotExist``, ``MultipleObjectsReturned`` and ``NotUpdated``
    exception classes and an ``objects`` manager::

        class Feedback(TimestampedDocument):
            score: int

        await Feedback.objects.create(score=5)
    """

    created_at: dt.datetime = Field(default_factory=now_ms)
    updated_at: dt.datetime = Field(default_factory=now_ms)

    objects: ClassVar[ManagerDescriptor] = ManagerDescriptor()
    DoesNotExist: ClassVar[type[errors.DoesNotExist]] = errors.DoesNotExist
    MultipleObjectsReturned: ClassVar[type[errors.MultipleObjectsReturned]] = (
        errors.MultipleObjectsReturned
    )
    NotUpdated: ClassVar[type[errors.NotUpdated]] = errors.NotUpdated
    AlreadyExists: ClassVar[type[errors.AlreadyExists]] = errors.AlreadyExists

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build a document from your own values; a refused one raises ``InvalidInput``.

        pydantic wraps what a field's check raised in its ``ValidationError``:
        that check's own error (``InvalidPayload`` for a payload, with its
        path) is raised instead, and any other refusal as ``InvalidInput``.
        """
        try:
            super().__init__(*args, **kwargs)
        except ValidationError as exc:
            raise _refusal(type(self), exc) from None

    #: Fields the manager's ``update()`` refuses to set.
    _immutable_fields: ClassVar[frozenset[str]] = frozenset({"id", "created_at", "revision_id"})
    #: Shard key fields besides ``_id`` (docs/scaling.md); none for an unsharded model.
    _shard_key_fields: ClassVar[frozenset[str]] = frozenset()
    find_one: ClassVar[Any] = _ScopedFindOne()

    def _shard_key_filter(self) -> dict[str, Any]:
        """Equality on this document's stored shard key fields besides ``_id``."""
        return {}

    def _remember_stored(self) -> None:
        """Note the shard key values just written (a hook for sharded models)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # This runs before pydantic collects the new class's fields. Once
        # init() has set up a class, Beanie has put a query expression in
        # place of each of its fields (``Model.created_at == ...``), and
        # pydantic would take the one a subclass inherits for the field's
        # default: a subclass defined after init() would insert "_id" as its
        # id. Hiding the expression makes pydantic copy the parent's field.
        for name in getattr(cls, "__pydantic_fields__", {}):
            if name not in vars(cls) and isinstance(getattr(cls, name, None), ExpressionField):
                setattr(cls, name, PydanticUndefined)
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if value is PydanticUndefined:  # hidden by __init_subclass__: show it again
                delattr(cls, name)
        # Django gives every model its own exception classes, deriving from
        # the parent model's, so `except Parent.DoesNotExist` still catches.
        for name in ("DoesNotExist", "MultipleObjectsReturned", "NotUpdated", "AlreadyExists"):
            parent: type[Exception] = getattr(cls, name)
            own = type(
                name,
                (parent,),
                {"__module__": cls.__module__, "__qualname__": f"{cls.__qualname__}.{name}"},
            )
            setattr(cls, name, own)

    @field_validator("created_at", "updated_at", mode="after")
    @classmethod
    def _utc_milliseconds(cls, value: dt.datetime) -> dt.datetime:
        return to_utc_ms(value)

    @before_event(Insert)
    def _stamp_insert(self) -> None:
        # A document built with an explicit created_at keeps it (a backfill);
        # updated_at then defaults to it.
        given = self.model_fields_set
        if "created_at" not in given:
            self.created_at = self.updated_at = now_ms()
        elif "updated_at" not in given:
            self.updated_at = self.created_at

    @before_event(Replace, Save, SaveChanges, Update)
    def _stamp_update(self) -> None:
        self.updated_at = now_ms()

    async def save(self, *args: Any, force_update: bool = False, **kwargs: Any) -> Self:
        """Save the document, inserting it if it is new.

        Args:
            force_update: Django's flag: only update an existing document, and
                raise ``NotUpdated`` when it is gone instead of inserting it.
        """
        if force_update:
            return await self.replace(*args, **kwargs)
        saved: Self = await super().save(*args, **kwargs)
        return saved

    async def replace(self, *args: Any, **kwargs: Any) -> Self:
        """Replace the stored document with this one.

        Raises:
            NotUpdated: the document was deleted meanwhile (or never saved).
        """
        from beanie.exceptions import DocumentNotFound

        if self.id is None:
            raise self.NotUpdated(
                f"{type(self).__name__} was never saved; insert it first", document=self
            )
        try:
            replaced: Self = await super().replace(*args, **kwargs)
        except DocumentNotFound as exc:
            raise self.NotUpdated(
                f"{type(self).__name__}(id={self.id}) no longer exists; nothing was updated",
                document=self,
            ) from exc
        self._remember_stored()
        return replaced

    async def update(self, *args: Any, **kwargs: Any) -> Self:
        """Apply update operators to this document (Beanie's ``update``).

        Raises:
            NotUpdated: the document was deleted meanwhile.
        """
        if self.id is None:
            raise self.NotUpdated(
                f"{type(self).__name__} was never saved; insert it first", document=self
            )
        try:
            updated: Self = await super().update(*args, **kwargs)
        except AttributeError:
            # Beanie fails inside merge_models when the update matched nothing;
            # tell that apart from a genuine AttributeError by asking the server.
            gone = (
                await self.get_pymongo_collection().count_documents({"_id": self.id}, limit=1) == 0
            )
            if not gone:
                raise
            raise self.NotUpdated(
                f"{type(self).__name__}(id={self.id}) no longer exists; nothing was updated",
                document=self,
            ) from None
        self._remember_stored()
        return updated

    @classmethod
    def get_settings(cls) -> DocumentSettings:
        """Beanie's settings of this class, once :func:`llmreq_mongo.init` has registered it.

        Raises:
            NotInitialized: ``init()`` has not been called (Beanie's own error
                carries no message).
        """
        # Beanie keeps the settings in a class attribute, so a subclass that
        # init() never registered would inherit its parent's, and with them
        # the parent's collection: only settings of the class itself count.
        # Read here rather than through Beanie's get_settings, which reads the
        # same attribute again: every write and query asks for it.
        settings: DocumentSettings | None = cls.__dict__.get("_document_settings")
        if settings is None:
            raise errors.NotInitialized(cls)
        return settings

    # -- hooks used by the manager and QuerySet ------------------------------

    @classmethod
    def from_mongo(cls, raw: Mapping[str, Any]) -> Self:
        """Build a document from what MongoDB returned for it."""
        doc: Self = cls.model_validate(raw)
        return doc

    @classmethod
    def _check_field_names(cls, fields: Mapping[str, Any], action: str) -> None:
        unknown = sorted(set(fields) - set(cls.model_fields))
        if unknown:
            known = ", ".join(sorted(set(cls.model_fields) - {"revision_id"}))
            raise errors.InvalidInput(
                f"cannot {action} {cls.__name__}: unknown field(s) {', '.join(unknown)}; "
                f"the fields are: {known}"
            )

    @classmethod
    async def _create(cls, fields: Mapping[str, Any]) -> Self:
        """Validate ``fields`` and insert a new document (``objects.create``).

        ``created_at`` (and ``updated_at``) given here are kept: a backfill.
        """
        cls._check_field_names(fields, "create")
        values = dict(fields)
        created, updated = check_timestamps(values.get("created_at"), values.get("updated_at"))
        if created is not None:
            values["created_at"], values["updated_at"] = created, updated
        doc = cls(**values)  # a refusal raises InvalidInput (see __init__)
        for name in fields:
            check_storable(name, getattr(doc, name))
        await doc._insert_checked()
        return doc

    async def _insert_checked(self) -> None:
        try:
            with storage_errors(f"insert {type(self).__name__}"):
                await self.insert()
        except errors.StorageError as exc:
            if isinstance(exc.__cause__, DuplicateKeyError):
                details = exc.__cause__.details or {}
                raise self.AlreadyExists(
                    f"cannot insert {type(self).__name__}: {details or exc}",
                    key=details.get("keyValue"),
                ) from exc.__cause__
            raise

    @classmethod
    def _encode_update(cls, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``fields`` for ``QuerySet.update`` and encode them for ``$set``."""
        cls._check_field_names(fields, "update")
        refused = sorted(set(fields) & cls._immutable_fields)
        if refused:
            raise errors.InvalidInput(
                f"cannot update {', '.join(refused)} of {cls.__name__}: set once on insert"
            )
        if "updated_at" in fields:
            raise errors.InvalidInput(
                f"cannot update updated_at of {cls.__name__}: every update sets it to the "
                "time of the update; leave it out"
            )
        encoder = Encoder(custom_encoders=cls.get_settings().bson_encoders, to_db=True)
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            try:
                checked = _field_adapter(cls, name).validate_python(value)
            except ValidationError as exc:
                raise errors.InvalidInput(f"cannot update {cls.__name__}.{name}: {exc}") from None
            info = cls.model_fields[name]
            changes[info.alias or name] = encoder.encode(checked)
        changes["updated_at"] = now_ms()
        return changes

    @classmethod
    async def _delete_matching(cls, query: Mapping[str, Any]) -> int:
        """Delete the documents matching ``query`` (``QuerySet.delete``)."""
        with storage_errors(f"delete {cls.__name__} documents"):
            result = await cls.get_pymongo_collection().delete_many(query)
        return int(result.deleted_count)

    def __str__(self) -> str:
        return f"{type(self).__name__}(id={self.id})"


_ADAPTERS: dict[tuple[type[TimestampedDocument], str], TypeAdapter[Any]] = {}


def _field_adapter(model: type[TimestampedDocument], name: str) -> TypeAdapter[Any]:
    """A validator for one field, constraints included, built once."""
    key = (model, name)
    adapter = _ADAPTERS.get(key)
    if adapter is None:
        adapter = _ADAPTERS[key] = TypeAdapter(model.model_fields[name].rebuild_annotation())
    return adapter
