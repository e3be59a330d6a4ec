"""Django-style lookups (``session_key__startswith="abc"``) turned into MongoDB filters.

Every value is checked against the kind of the field it is compared with.
Equality with a scalar is written plainly (``{"session_key": "abc"}``), the
form every query planner matches to an index; any other comparison, and
equality with a sub-document or array, is written with an explicit operator
(``{"$eq": value}``). So a value that came from an HTTP body, such as
``{"$ne": ""}``, is either refused (where a field wants a scalar) or compared
as a literal, and can never act as a query operator. ``__startswith`` and
``__contains`` escape their argument, so user input never runs as a regular
expression.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from beanie import Link, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel

from llmreq_mongo._checks import a_type, check_text, client_ref
from llmreq_mongo._time import aware_utc
from llmreq_mongo.errors import InvalidInput, InvalidLookup, InvalidPayload

from .payload import encode_payload, escape_key, normalize_payload

__all__ = ["FieldSpec", "field_specs", "resolve_field", "translate_lookups"]

Kind = Literal["str", "bool", "int", "number", "datetime", "oid", "json", "link", "model", "any"]

_OPERATORS = {
    "exact": "$eq",
    "ne": "$ne",
    "gt": "$gt",
    "gte": "$gte",
    "lt": "$lt",
    "lte": "$lte",
    "in": "$in",
    "isnull": "",
    "startswith": "",
    "contains": "",
}
_ORDERED = {"gt", "gte", "lt", "lte"}


@dataclass(frozen=True)
class FieldSpec:
    """What a lookup needs to know about one field of a document."""

    name: str
    db_name: str
    kind: Kind
    #: For a link, the document class it points to; for an embedded model
    #: (``response``), the model, whose fields the lookup goes on into.
    target: type[Any] | None = None


def _kind_of(annotation: Any) -> Kind:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind_of(members[0]) if len(members) == 1 else "any"
    if origin is typing.Annotated:
        return _kind_of(typing.get_args(annotation)[0])
    if origin is Link or annotation is Link:
        return "link"
    if annotation is Any or origin in (dict, list) or annotation in (dict, list):
        return "json"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "model"
        if issubclass(annotation, bool):
            return "bool"
        if issubclass(annotation, (ObjectId, PydanticObjectId)):
            return "oid"
        if issubclass(annotation, str):
            return "str"
        if issubclass(annotation, int):
            return "int"
        if issubclass(annotation, float):
            return "number"
        if issubclass(annotation, dt.datetime):
            return "datetime"
    return "any"


def _link_target(annotation: Any) -> type[Any] | None:
    """The class of a ``Link[...]`` or an embedded model (through Optional), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            target = _link_target(arg)
            if target is not None:
                return target
        return None
    if origin is Link:
        (target,) = typing.get_args(annotation)
        return target if isinstance(target, type) else None
    return None


_SPECS: dict[type[Any], Mapping[str, FieldSpec]] = {}


def field_specs(model: type[Any]) -> Mapping[str, FieldSpec]:
    """The fields of ``model`` that lookups and ``order_by`` accept, by name."""
    cached = _SPECS.get(model)
    if cached is not None:
        return cached
    specs: dict[str, FieldSpec] = {}
    fields = model.model_fields
    for name, info in fields.items():
        if name == "revision_id":
            continue
        kind = _kind_of(info.annotation)
        db_name = "_id" if name == "id" else (info.alias or name)
        if kind == "link":
            # A link is queried through its plain id twin (`llm_client_id`):
            # paths through a DBRef are not portable (docs/embedded-engine.md, §2).
            twin = f"{name}_id"
            if twin not in fields:
                continue
            db_name = twin
        specs[name] = FieldSpec(name, db_name, kind, _link_target(info.annotation))
    if "id" in fields:
        specs["pk"] = FieldSpec("pk", "_id", "oid")
    _SPECS[model] = specs
    return specs


def resolve_field(model: type[Any], name: str) -> tuple[FieldSpec, str]:
    """Resolve ``field`` or ``field__json__path`` to its spec and MongoDB path.

    Raises:
        InvalidLookup: the field is unknown, or a path goes into a field that
            is not JSON.
    """
    _check_name(name)
    head, *path = name.split("__")
    specs = field_specs(model)
    spec = specs.get(head)
    if spec is None:
        known = ", ".join(sorted(specs))
        raise InvalidLookup(f"{model.__name__} has no field {head!r}; known fields: {known}")
    db_path = [spec.db_name]
    while path and spec.kind == "model" and spec.target is not None:
        # An embedded model (``response__usage__output_tokens``): its fields are typed too.
        inner = field_specs(spec.target)
        field = inner.get(path[0])
        if field is None:
            known = ", ".join(sorted(inner))
            where = "__".join(name.split("__")[: len(db_path)])
            raise InvalidLookup(f"{where!r} has no field {path[0]!r}; its fields are: {known}")
        spec, path = field, path[1:]
        db_path.append(spec.db_name)
    if not path:
        return spec, ".".join(db_path)
    if spec.kind != "json":
        raise InvalidLookup(
            f"{name!r}: {spec.name!r} is not a JSON field, so it has no sub-field "
            f"{path[0]!r}; the lookups are: {', '.join(_OPERATORS)}"
        )
    if any(not part for part in path):
        raise InvalidLookup(f"{name!r} has an empty path segment")
    return spec, ".".join([*db_path, *(escape_key(part) for part in path)])


def _check_name(name: str) -> None:
    # BSON field names cannot hold NUL, and no string may hold a lone surrogate.
    if "\x00" in name:
        raise InvalidLookup(f"{name!r} contains a NUL character, which no field name can hold")
    _text(name, "the lookup", name)


def _text(key: str, what: str, value: str) -> str:
    try:
        return check_text(what, value)
    except InvalidInput as exc:
        raise InvalidLookup(f"{key!r}: {exc}") from None


def _reject(key: str, expected: str, value: Any) -> InvalidLookup:
    return InvalidLookup(f"{key!r} expects {expected}, got {a_type(value)}; pass {expected}")


def _coerce(spec: FieldSpec, key: str, value: Any) -> Any:
    """Check one comparison value against the field's kind and convert it."""
    kind = spec.kind
    if kind == "str":
        if isinstance(value, str):
            return _text(key, "the value", value)
        raise _reject(key, "a string", value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise _reject(key, "True or False", value)
    if kind in ("int", "number"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidLookup(f"{key} expects a finite number, got {value!r}")
            return value
        raise _reject(key, "a number", value)
    if kind == "datetime":
        return _coerce_datetime(key, value)
    if kind == "model":
        raise InvalidLookup(
            f"{key!r} is a sub-document: compare one of its fields "
            f"(e.g. {spec.name}__{next(iter(field_specs(spec.target or BaseModel)), 'field')}), "
            f"or use {spec.name}__isnull"
        )
    if kind in ("oid", "link"):
        return _coerce_object_id(spec, key, value)
    if kind == "json":
        try:
            normalised, _ = normalize_payload(value)
        except InvalidPayload as exc:
            raise InvalidLookup(f"{key}: {exc}") from None
        return encode_payload(normalised)
    if isinstance(value, str):
        return _text(key, "the value", value)
    if value is None or isinstance(value, (int, float, dt.datetime, ObjectId)):
        return _coerce_datetime(key, value) if isinstance(value, dt.datetime) else value
    raise _reject(key, "a plain value (string, number, boolean or datetime)", value)


def _coerce_datetime(key: str, value: Any) -> dt.datetime:
    return aware_utc(key, value, error=InvalidLookup)


def _coerce_object_id(spec: FieldSpec, key: str, value: Any) -> ObjectId:
    if spec.target is not None:
        # A link: the client itself, a link to it, or its id.
        try:
            found = client_ref(value, model=spec.target, name=key)
        except InvalidInput as exc:
            raise InvalidLookup(str(exc)) from None
        assert found is not None  # None is compared as null before this is reached
        return found
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    raise _reject(key, "an ObjectId or a 24-character hex id", value)


def _condition(spec: FieldSpec, key: str, op: str, value: Any) -> dict[str, Any]:
    if op == "isnull":
        if not isinstance(value, bool):
            raise _reject(key, "True or False", value)
        return {"$eq": None} if value else {"$ne": None}
    if op == "in":
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(
            value, (list, tuple, set, frozenset)
        ):
            raise _reject(key, "a list, tuple or set of values", value)
        return {"$in": [_coerce_nullable(spec, key, item) for item in value]}
    if op in ("startswith", "contains"):
        if spec.kind not in ("str", "json", "any"):
            raise InvalidLookup(f"{key}: __{op} applies to strings, not to {spec.name!r}")
        if not isinstance(value, str):
            raise _reject(key, "a string", value)
        pattern = re.escape(_text(key, "the value", value))
        return {"$regex": "^" + pattern if op == "startswith" else pattern}
    if op in _ORDERED and value is None:
        raise InvalidLookup(f"{key} cannot compare with None; use __isnull")
    return {_OPERATORS[op]: _coerce_nullable(spec, key, value)}


def _coerce_nullable(spec: FieldSpec, key: str, value: Any) -> Any:
    return None if value is None else _coerce(spec, key, value)


def _plain_equality(ops: Mapping[str, Any]) -> bool:
    return len(ops) == 1 and "$eq" in ops and not isinstance(ops["$eq"], (dict, list))


def translate_lookups(model: type[Any], lookups: Mapping[str, Any]) -> dict[str, Any]:
    """Translate ``filter()`` keyword arguments into one MongoDB filter.

    Raises:
        InvalidLookup: an unknown field or lookup, or a value of the wrong kind.
    """
    by_path: dict[str, dict[str, Any]] = {}
    extra: list[dict[str, Any]] = []
    for key, value in lookups.items():
        _check_name(key)
        name, op = key, "exact"
        head, sep, last = key.rpartition("__")
        if sep and last in _OPERATORS:
            name, op = head, last
        spec, path = resolve_field(model, name)
        condition = _condition(spec, key, op, value)
        target = by_path.setdefault(path, {})
        if target.keys() & condition.keys():
            extra.append({path: condition})
        else:
            target.update(condition)
    query: dict[str, Any] = {
        path: ops["$eq"] if _plain_equality(ops) else ops for path, ops in by_path.items()
    }
    if extra:
        return {"$and": [query, *extra]}
    return query
