"""``values()`` and ``values_list()``: query results as plain rows instead of documents.

A row builder is made once per call from the field names (checked then, as
lookups are), and turns each raw MongoDB document into a dict, a tuple or one
value. Only the top-level fields the rows need are fetched; a payload path
(``request__model``) is followed in the decoded payload, so it reaches into
arrays by index as lookups do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from bson import Int64

from llmreq_mongo._checks import check_count
from llmreq_mongo._time import to_utc_ms
from llmreq_mongo.errors import InvalidLookup

from .lookups import FieldSpec, field_specs, resolve_field
from .payload import decode_payload

if TYPE_CHECKING:
    from .queryset import QuerySet

__all__ = ["Row", "ValuesQuerySet", "row_builder"]

T = TypeVar("T")
Row = Callable[[Mapping[str, Any]], Any]


class _Column:
    """How one named field is read from a raw document."""

    __slots__ = ("kind", "path", "top")

    def __init__(self, spec: FieldSpec, *, payload_path: Sequence[str]) -> None:
        self.kind = spec.kind
        self.top = spec.db_name
        self.path = tuple(payload_path)

    def read(self, raw: Mapping[str, Any]) -> Any:
        value = raw.get(self.top)
        if value is None:
            return None
        if self.kind in ("json", "model"):
            # An embedded model (``response``) is read as its stored JSON,
            # whose own keys never need escaping and whose payloads decode.
            return _follow(decode_payload(value), self.path)
        if isinstance(value, dt.datetime):
            return to_utc_ms(value)
        if type(value) is Int64:
            return int(value)
        return value


def _follow(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _all_fields(model: type[Any]) -> list[str]:
    # Every field once: a link is given by its id twin, which is a field too.
    specs = field_specs(model)
    names = ["id", *(n for n in model.model_fields if n in specs and n != "id")]
    return [n for n in names if specs[n].kind != "link"]


def row_builder(
    model: type[Any], fields: Sequence[str], *, shape: Literal["dict", "tuple", "flat"]
) -> tuple[Row, dict[str, int]]:
    """A function from a raw document to one row, and the projection it needs.

    Raises:
        InvalidLookup: an unknown field, or a path into a field that is not JSON.
    """
    names = list(fields) or _all_fields(model)
    columns: list[_Column] = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidLookup(f"values() takes field names, got {name!r}")
        resolve_field(model, name)  # checks the whole path
        head, *path = name.split("__")
        columns.append(_Column(field_specs(model)[head], payload_path=path))
    projection = {column.top: 1 for column in columns}
    if shape == "flat":
        (only,) = columns
        return only.read, projection
    if shape == "tuple":
        return (lambda raw: tuple(c.read(raw) for c in columns)), projection
    pairs = list(zip(names, columns, strict=True))
    return (lambda raw: {name: c.read(raw) for name, c in pairs}), projection


class ValuesQuerySet(Generic[T]):
    """The rows of a query (``qs.values(...)``, ``qs.values_list(...)``), read lazily.

    Awaited like a ``QuerySet``: ``await rows.to_list()``, ``async for row in
    rows``, ``rows.iterator()``, ``first()``, ``last()``, ``count()``,
    ``exists()``. Filter, order and slice the ``QuerySet`` before calling
    ``values()``.
    """

    __slots__ = ("_build", "_projection", "_query")

    def __init__(self, query: QuerySet[Any], built: tuple[Row, dict[str, int]]) -> None:
        self._query = query
        self._build, self._projection = built

    async def to_list(self) -> list[T]:
        """Every row, in the query's order."""
        return [self._build(doc) for doc in await self._query._raw_list(self._projection)]

    async def __aiter__(self) -> AsyncIterator[T]:
        async for doc in self._query._raw_stream(self._projection):
            yield self._build(doc)

    async def iterator(self, *, batch_size: int = 1000) -> AsyncIterator[T]:
        """Stream the rows, ``batch_size`` documents at a time from the server."""
        check_count("batch_size", batch_size, maximum=100_000)
        async for doc in self._query._raw_stream(self._projection, batch_size):
            yield self._build(doc)

    async def first(self) -> T | None:
        """The first row, or None."""
        rows = await self._query._raw_edge(last=False, projection=self._projection)
        return self._build(rows[0]) if rows else None

    async def last(self) -> T | None:
        """The last row, or None."""
        rows = await self._query._raw_edge(last=True, projection=self._projection)
        return self._build(rows[0]) if rows else None

    async def count(self) -> int:
        """The number of rows."""
        return await self._query.count()

    async def exists(self) -> bool:
        """Whether there is any row."""
        return await self._query.exists()
