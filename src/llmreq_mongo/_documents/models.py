"""The two documents: ``LLMClient`` and its request history, ``LLMClientRequest``.

``LLMClientRequest`` mirrors the reference's ``LLMClientRequests`` model. Its
hot write path (``objects.create`` and the recorder) lives in
:mod:`.records`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

from beanie import (
    Delete,
    Insert,
    Link,
    PydanticObjectId,
    Replace,
    Save,
    SaveChanges,
    after_event,
    before_event,
)
from bson import DBRef, Int64, ObjectId
from pydantic import Field, PrivateAttr, field_validator, model_validator
from pymongo import IndexModel
from typing_extensions import Self

from llmreq_mongo import errors
from llmreq_mongo._capture import LLMResponse, response_document, response_from, stored_response
from llmreq_mongo._checks import MAX_SESSION_KEY, check_bool, check_session_key, client_ref
from llmreq_mongo._queries import (
    QuerySet,
    decode_payload,
    encode_payload,
    normalize_payload,
)
from llmreq_mongo._time import now_ms
from llmreq_mongo.errors import storage_errors

from .base import TimestampedDocument
from .managers import RequestManagerDescriptor
from .records import (
    EncodedRecord,
    ValidatedRequest,
    checked_response,
    encode_request,
    new_record_id,
    payload_and_stored_form,
    validate_request,
)

__all__ = [
    "LLMClient",
    "LLMClientRequest",
    "LLMClientRequests",
    "verify_clients",
]

_REQUEST_FIELDS = frozenset({"llm_client", "request", "session_key", "is_aggregation", "response"})
_CREATE_FIELDS = _REQUEST_FIELDS | {"created_at", "updated_at"}
#: The guard of objects.create's insert, made once: it holds nothing but its
#: message, so one serves every call.
_INSERT_ERRORS = storage_errors("insert LLMClientRequest")


class LLMClient(TimestampedDocument):
    """An LLM client: the thing that handled the requests recorded against it.

    Deleting a client through the library (``await client.delete()`` or a
    ``QuerySet.delete()``) deletes its requests too, as the reference's
    ``on_delete=CASCADE`` does.
    """

    # Strict: a lookup refuses bytes for these, so writes must too (pydantic's
    # lax mode would turn b"x" into "x").
    name: str = Field(min_length=1, max_length=255, strict=True)
    description: str = Field(default="", strict=True)
    metadata: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "llm_clients"
        indexes = [IndexModel([("name", 1)], name="llmreq_name_unique", unique=True)]

    @field_validator("metadata", mode="after")
    @classmethod
    def _plain_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Read back, a 64-bit integer is the driver's bson.Int64: give an int.
        plain: dict[str, Any] = _without_int64(value)
        return plain

    @property
    def llmclientrequests(self) -> QuerySet[LLMClientRequest]:
        """This client's requests (the reference's related name)."""
        if self.id is None:
            raise errors.InvalidInput(f"LLMClient {self.name!r} is not saved; it has no requests")
        return LLMClientRequest.objects.filter(llm_client_id=self.id)

    # Deleting a client: its requests, then the client, then its requests
    # again. Requests go first, so an interruption leaves a client with fewer
    # requests, never requests without a client. The final sweep removes
    # those that landed while the client was being deleted; a write that
    # lands after the sweep has begun finds the client gone and removes its
    # own record (`verify_clients`). Together: no request outlives its client.
    # The final sweep waits CLIENT_CHECK_WINDOW, the time writers trust a
    # client they have seen, so a delete takes about a second longer.

    @before_event(Delete)
    async def _cascade(self) -> None:
        if self.id is not None:
            await LLMClientRequest._delete_matching({"llm_client_id": self.id})

    @after_event(Delete)
    async def _sweep(self) -> None:
        if self.id is not None:
            _SEEN.pop(ObjectId(self.id), None)
            await asyncio.sleep(CLIENT_CHECK_WINDOW)
            await LLMClientRequest._delete_matching({"llm_client_id": self.id})

    @classmethod
    async def _delete_matching(cls, query: Mapping[str, Any]) -> int:
        with storage_errors("delete LLM clients"):
            coll = cls.get_pymongo_collection()
            ids = [doc["_id"] async for doc in coll.find(query, projection={"_id": 1})]
            if not ids:
                return 0
            await LLMClientRequest._delete_matching({"llm_client_id": {"$in": ids}})
            result = await coll.delete_many({"_id": {"$in": ids}})
            for cid in ids:
                _SEEN.pop(cid, None)
            await asyncio.sleep(CLIENT_CHECK_WINDOW)
            await LLMClientRequest._delete_matching({"llm_client_id": {"$in": ids}})
        return int(result.deleted_count)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "id": str(self.id) if self.id is not None else None,
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _without_int64(value: Any) -> Any:
    if type(value) is Int64:
        return int(value)
    if isinstance(value, dict):
        return {k: _without_int64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_int64(v) for v in value]
    return value


#: The fields of a request whose writes are checked (see ``LLMClientRequest.update``).
_GUARDED_FIELDS = _REQUEST_FIELDS | {"llm_client_id"}
#: Set while ``save()`` or ``save_changes()``, which check the fields first,
#: write them with ``update``.
_FIELDS_CHECKED: ContextVar[bool] = ContextVar("llmreq_fields_checked", default=False)


@contextlib.contextmanager
def _fields_checked() -> Iterator[None]:
    """Let :meth:`LLMClientRequest.update` pass the writes of a save that checked its fields."""
    token = _FIELDS_CHECKED.set(True)
    try:
        yield
    finally:
        _FIELDS_CHECKED.reset(token)


def _checked_update(update: Any, owner: str) -> Any:
    """``update`` (``{"$set": {...}}`` or Beanie's operators) with its checked fields checked.

    Raises:
        InvalidInput: a write that only ``save()`` may make, or a refused value.
    """
    if not isinstance(update, Mapping):
        return update  # not an update document: Beanie's own error
    checked: dict[str, Any] = {}
    for operator, spec in update.items():
        name = str(operator)
        if not (name.startswith("$") and isinstance(spec, Mapping)):
            checked[name] = spec
            continue
        fields: dict[str, Any] = {}
        for path, value in spec.items():
            field = str(path)
            root = field.split(".", 1)[0]
            if root in _GUARDED_FIELDS:
                if name != "$set" or field != root or root not in _SETTABLE:
                    raise errors.InvalidInput(
                        f"cannot apply {name} to {field} of {owner} with doc.update() or "
                        f"doc.set(): only a $set of the whole of {', '.join(sorted(_SETTABLE))} "
                        "is checked there; assign the field and await doc.save()"
                    )
                value = _SETTABLE[root](value)
            fields[field] = value
        checked[name] = fields
    return checked


def _stored_response(value: Any) -> Any:
    return None if value is None else response_document(response_from(value))


#: How the manager's ``update()`` and ``doc.set()`` check each field they may
#: set, and give its stored form.
_SETTABLE: dict[str, Callable[[Any], Any]] = {
    "request": lambda value: payload_and_stored_form(value, copy=True)[1],
    "response": _stored_response,
    "session_key": check_session_key,
    "is_aggregation": lambda value: check_bool("is_aggregation", value),
}


def _link_id(value: Any) -> ObjectId | None:
    if isinstance(value, Link):
        return ObjectId(value.ref.id)
    doc_id = getattr(value, "id", None)
    return ObjectId(doc_id) if doc_id is not None else None


class LLMClientRequest(TimestampedDocument):
    """One request handled by an LLM client.

    Example::

        req = await LLMClientRequest.objects.create(
            llm_client=client,
            request={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
            session_key="abc123",
        )
        history = await LLMClientRequest.objects.filter(session_key="abc123").to_list()
    """

    llm_client: Link[LLMClient]
    #: The linked client's id, stored as its own field and always kept equal to
    #: the link's id; queries by client use it (the reference's internal field).
    llm_client_id: PydanticObjectId | None = None
    request: Any = None
    session_key: str | None = Field(default=None, max_length=MAX_SESSION_KEY)
    is_aggregation: bool = False
    #: What came back: status, body, usage, timings, error. None for a
    #: record of the request alone.
    response: LLMResponse | None = None

    objects: ClassVar[RequestManagerDescriptor] = RequestManagerDescriptor()
    _immutable_fields: ClassVar[frozenset[str]] = frozenset(
        {"id", "created_at", "revision_id", "llm_client_id"}
    )
    _shard_key_fields: ClassVar[frozenset[str]] = frozenset({"llm_client_id", "session_key"})
    #: The shard key values as stored (llm_client_id, session_key), once known.
    _stored_key: tuple[Any, Any] | None = PrivateAttr(default=None)

    def _shard_key_filter(self) -> dict[str, Any]:
        # The stored values, not the ones in memory: a save that changes the
        # session key must find the record under the key it is stored with,
        # and that is the key mongos routes by.
        client_id, session_key = self._stored_key or (self.llm_client_id, self.session_key)
        return {"llm_client_id": client_id, "session_key": session_key}

    def _remember_stored(self) -> None:
        self._stored_key = (self.llm_client_id, self.session_key)

    class Settings:
        name = "llm_client_requests"
        indexes = [
            IndexModel(
                [("session_key", 1), ("created_at", 1), ("_id", 1)], name="llmreq_session_time"
            ),
            IndexModel(
                [("llm_client_id", 1), ("created_at", 1), ("_id", 1)], name="llmreq_client_time"
            ),
        ]

    @field_validator("request", mode="before")
    @classmethod
    def _normalise_request(cls, value: Any) -> Any:
        if type(value) is _Checked:
            return value.payload  # normalised already: not walked twice
        return normalize_payload(value)[0]

    @field_validator("response", mode="before")
    @classmethod
    def _check_response(cls, value: Any) -> LLMResponse | None:
        return None if value is None else response_from(value)

    def __iter__(self) -> Any:
        # Beanie encodes a document for every write it makes (insert, save,
        # replace, state management) from this iteration: it yields the
        # payloads in their stored form, awkward keys escaped, while the
        # attributes keep the plain JSON types the caller gave.
        for name, value in super().__iter__():
            if name == "request":
                value = encode_payload(value)
            elif name == "response" and value is not None:
                value = response_document(value)
            yield name, value

    def _sync_client_id(self) -> None:
        link_id = _link_id(self.llm_client)
        if link_id is not None and self.llm_client_id != link_id:
            self.llm_client_id = PydanticObjectId(link_id)

    @model_validator(mode="after")
    def _client_id_from_link(self) -> Self:
        self._sync_client_id()
        return self

    @before_event(Insert, Replace, Save, SaveChanges)
    def _sync_before_write(self) -> None:
        self._check_fields()
        self._sync_client_id()

    def _check_fields(self) -> None:
        """Check the fields as ``objects.create`` does, right before Beanie writes them.

        ``save()``, ``replace()``, ``insert()`` and ``save_changes()`` write
        what the attributes hold now, and neither an assignment
        (``doc.request = ...``) nor a change in place
        (``doc.request["n"] = ...``) is validated when it is made. So the
        payload is checked (and copied) again, with the same errors, and a
        response given as a dict of its fields becomes an ``LLMResponse``.

        Raises:
            InvalidInput: a field is refused (``InvalidPayload`` for the
                payload or the response body); nothing is written.
        """
        self.request = normalize_payload(self.request)[0]
        self.session_key = check_session_key(self.session_key)
        check_bool("is_aggregation", self.is_aggregation)
        response: Any = self.response
        if response is not None:
            # An LLMResponse is checked again from its fields: its body may
            # have been changed in place since it was built.
            fields = response.model_dump() if isinstance(response, LLMResponse) else response
            self.response = checked_response(fields)

    async def update(self, *args: Any, **kwargs: Any) -> Self:
        """Apply update operators to this document, its checked fields checked as by ``save()``.

        ``doc.set({...})`` and ``doc.update({"$set": {...}})`` may set
        ``request``, ``response``, ``session_key`` and ``is_aggregation``
        whole: each value is checked as ``objects.create`` checks it, and
        stored in its stored form (the payload's awkward keys escaped).
        Any other operator on those fields, a path into them
        (``request.model``) and any write of the client link are refused:
        assign the field and ``await doc.save()`` instead.

        Raises:
            InvalidInput: such a write, or a value refused by the checks.
            NotUpdated: the document was deleted meanwhile.
        """
        if not _FIELDS_CHECKED.get():
            args = tuple(_checked_update(update, type(self).__name__) for update in args)
        updated: Self = await super().update(*args, **kwargs)
        return updated

    async def save(self, *args: Any, **kwargs: Any) -> Self:
        """Save the document, inserting it if it is new; its fields are checked first.

        Beanie writes an existing document with ``$set``, which
        :meth:`update` lets through once the fields are checked.
        """
        with _fields_checked():
            saved: Self = await super().save(*args, **kwargs)
        return saved

    async def save_changes(self, *args: Any, **kwargs: Any) -> Self | None:
        """Save the fields changed since the document was read (Beanie's ``save_changes``).

        The fields are checked first (as by ``save()``); Beanie then writes
        the changes with ``$set``, which :meth:`update` lets through.
        """
        with _fields_checked():
            saved: Self | None = await super().save_changes(*args, **kwargs)
        return saved

    @after_event(Insert)
    def _remember_inserted(self) -> None:
        self._remember_stored()

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Build a document from its stored form (Beanie's read path uses this).

        The payload's escaped keys are decoded here; build documents from
        your own values with the constructor or ``objects.create``.
        """
        if isinstance(obj, Mapping) and ("request" in obj or obj.get("response") is not None):
            obj = dict(obj)
            if "request" in obj:
                obj["request"] = _Checked(decode_payload(obj["request"]))
            if obj.get("response") is not None:
                obj["response"] = stored_response(obj["response"])
        doc: Self = super().model_validate(obj, *args, **kwargs)
        doc._remember_stored()
        return doc

    @classmethod
    async def _create(cls, fields: Mapping[str, Any]) -> Self:
        # The hot path of objects.create: kept lean, it costs little more than
        # the driver's own insert_one (see bench/record.py).
        extra = fields.keys() - _CREATE_FIELDS
        if extra:
            cls._check_field_names(fields, "create")
        checked = validate_request(
            fields.get("llm_client"),
            fields.get("request"),
            fields.get("session_key"),
            fields.get("is_aggregation", False),
            client_model=LLMClient,
            created_at=fields.get("created_at"),
            updated_at=fields.get("updated_at"),
            response=fields.get("response"),
            # Otherwise encode_request checks what fits, and completes the check
            # of a plain payload (which is checked by its copy, made in C).
            fit=bool(extra),
        )
        if extra:
            # A subclass with fields of its own: let Beanie validate and encode them.
            created: Self = await super()._create(
                {
                    **{k: fields[k] for k in extra},
                    **_fields_of(checked, fields["llm_client"]),
                }
            )
            await _refuse_if_deleted(cls, checked.client_id)
            return created
        record_id = new_record_id(PydanticObjectId)
        now = now_ms()
        # Encoded here (the driver sends raw BSON as it is, and reads its _id
        # from the attribute instead of decoding the record for it).
        encoded = EncodedRecord(
            encode_request(checked, record_id=record_id, now=now), record_id, checked.client_id
        )
        with _INSERT_ERRORS:
            await cls.get_pymongo_collection().insert_one(encoded)
        client_id = checked.client_id
        if not _seen_lately(client_id, time.monotonic()):
            await _refuse_if_deleted(cls, client_id)
        if type(client_id) is not PydanticObjectId:
            client_id = PydanticObjectId(client_id)
        values = {
            "id": record_id,
            "created_at": checked.created_at or now,
            "updated_at": checked.updated_at or now,
            "llm_client": fields["llm_client"],
            "llm_client_id": client_id,
            "request": checked.payload,
            "session_key": checked.session_key,
            "is_aggregation": checked.is_aggregation,
            "response": checked.response,
        }
        if cls is LLMClientRequest:
            return cls._construct_saved(values, (client_id, checked.session_key))
        doc: Self = cls.model_construct(**values)
        doc._remember_stored()
        return doc

    @classmethod
    def _construct_saved(cls, values: dict[str, Any], stored_key: tuple[Any, Any]) -> Self:
        """What ``model_construct(**values)`` builds, stored with ``stored_key`` (this class only).

        pydantic's ``model_construct`` resolves every default and initialises
        the private attributes once per class in the hierarchy; here both come
        from a document built once with it, so each create skips that work,
        and the stored key is set with the rest rather than through
        pydantic's ``__setattr__``.
        """
        template = _TEMPLATES.get(cls)
        if template is None:
            built = cls.model_construct(**values)
            private = dict(built.__pydantic_private__ or {})
            template = _TEMPLATES[cls] = (
                # the field order, with the defaults of fields not in `values`
                {k: (None if k in values else v) for k, v in built.__dict__.items()},
                frozenset(built.__pydantic_fields_set__),
                private,
                tuple(k for k, v in private.items() if isinstance(v, (dict, list, set))),
            )
        defaults, fields_set, private, mutable = template
        state = defaults.copy()
        state.update(values)
        own = private.copy()
        for name in mutable:
            own[name] = own[name].copy()
        own["_stored_key"] = stored_key
        doc = cls.__new__(cls)
        object.__setattr__(doc, "__dict__", state)
        object.__setattr__(doc, "__pydantic_fields_set__", set(fields_set))
        object.__setattr__(doc, "__pydantic_extra__", None)
        object.__setattr__(doc, "__pydantic_private__", own)
        return doc

    @classmethod
    def _encode_update(cls, fields: Mapping[str, Any]) -> dict[str, Any]:
        cls._check_field_names(fields, "update")
        rest = {k: v for k, v in fields.items() if k not in _REQUEST_FIELDS}
        changes = super()._encode_update(rest)
        if "llm_client" in fields:
            client_id, collection = client_ref(fields["llm_client"], model=LLMClient, write=True)
            changes["llm_client"] = DBRef(collection, client_id)
            changes["llm_client_id"] = client_id
        for name, stored_form in _SETTABLE.items():
            if name in fields:
                changes[name] = stored_form(fields[name])
        return changes

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (ids as strings, times in ISO 8601).

        ``response`` is there only for a record that has one, so a request
        alone gives exactly the reference's output.
        """
        client_id = str(self.llm_client_id) if self.llm_client_id is not None else None
        data: dict[str, Any] = {
            "id": str(self.id) if self.id is not None else None,
            "llm_client": client_id,
            "llm_client_id": client_id,
            "request": self.request,
            "session_key": self.session_key,
            "is_aggregation": self.is_aggregation,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
        if self.response is not None:
            # Only when there is one: a request alone keeps the reference's output.
            data["response"] = _response_json(self.response)
        return data


#: The reference's name for the same model.
LLMClientRequests = LLMClientRequest


#: Per class (``_construct_saved``): field order and defaults, fields set, private
#: attributes, and those of them that are containers, copied for each document.
_TEMPLATES: dict[
    type[Any], tuple[dict[str, Any], frozenset[str], dict[str, Any], tuple[str, ...]]
] = {}


def _fields_of(checked: ValidatedRequest, llm_client: Any) -> dict[str, Any]:
    times = {} if checked.created_at is None else {"created_at": checked.created_at}
    if checked.updated_at is not None:
        times["updated_at"] = checked.updated_at
    return {
        **times,
        "llm_client": llm_client,
        "request": _Checked(checked.payload),
        "session_key": checked.session_key,
        "is_aggregation": checked.is_aggregation,
        "response": checked.response,
    }


#: How long a client seen to exist is trusted by the writers of this process
#: without asking again, and so how long a client's delete waits before its
#: final sweep (see ``verify_clients``).
CLIENT_CHECK_WINDOW = 1.0

#: Client id -> ``time.monotonic()`` just before a read that found the client.
_SEEN: dict[ObjectId, float] = {}
_SEEN_MAX = 10_000


def _seen_lately(client_id: ObjectId, now: float) -> bool:
    """Whether ``client_id`` was found within ``CLIENT_CHECK_WINDOW`` of ``now`` (monotonic).

    :func:`verify_clients` does not ask for such a client again.
    """
    return now - _SEEN.get(client_id, -CLIENT_CHECK_WINDOW) < CLIENT_CHECK_WINDOW


async def verify_clients(
    client_ids: Collection[ObjectId], *, model: type[LLMClientRequest] | None = None
) -> frozenset[ObjectId]:
    """After a write of requests: the clients among ``client_ids`` that no longer exist.

    The requests of those clients are deleted from ``model``'s collection
    (``LLMClientRequest`` by default) before this returns: they were written
    while their client was being deleted, and no request outlives its client.
    Every writer of requests calls this once its write is acknowledged
    (``objects.create`` for one record, the recorder once per batch).

    A client found within the last ``CLIENT_CHECK_WINDOW`` seconds is not
    asked for again, so the check costs one read per client and window, not
    one per write. That is safe because a client's delete waits the same
    window before its final sweep: a write that skipped the read was
    acknowledged less than a window after a read that saw the client, so
    before the sweep began, and the sweep removes it.

    Raises:
        StorageError: MongoDB could not be asked, or the orphans not deleted.
    """
    now = time.monotonic()
    wanted = [cid for cid in dict.fromkeys(client_ids) if not _seen_lately(cid, now)]
    if not wanted:
        return frozenset()
    target = LLMClientRequest if model is None else model
    with storage_errors("check that the clients of new requests exist"):
        coll = LLMClient.get_pymongo_collection()
        if len(wanted) == 1:
            # Plain equality: the shape every planner serves from _id.
            found = await coll.find_one({"_id": wanted[0]}, projection={"_id": 1})
            present = set() if found is None else {wanted[0]}
        else:
            cursor = coll.find({"_id": {"$in": wanted}}, projection={"_id": 1})
            present = {doc["_id"] async for doc in cursor}
        if len(_SEEN) + len(present) > _SEEN_MAX:
            _SEEN.clear()
        for cid in present:
            _SEEN[cid] = now
        missing = frozenset(wanted) - present
        if missing:
            await target.get_pymongo_collection().delete_many(
                {"llm_client_id": {"$in": list(missing)}}
            )
    return missing


async def _refuse_if_deleted(model: type[LLMClientRequest], client_id: ObjectId) -> None:
    if await verify_clients((client_id,), model=model):
        raise LLMClient.DoesNotExist(
            f"LLMClient(id={client_id}) was deleted while this request was being written, "
            "so the request was removed again; record it against an existing client"
        )


class _Checked:
    """A payload normalised (or decoded) already, on its way into a document."""

    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


def _response_json(response: LLMResponse) -> dict[str, Any]:
    fields = response.model_dump(mode="json")
    fields["completed_at"] = _iso(response.completed_at)
    return fields


def _iso(value: dt.datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
