"""A model of how mongos routes a command on a sharded ``llm_client_requests``.

This is a model, not mongos: it reads a command as PyMongo sends it and
decides, for a given shard key, whether a router could send it to one shard,
to a few, to all of them, or would refuse it. It follows MongoDB's
documented routing rules, each named in the verdict it gives (the rules are
listed in docs/scaling.md):

- *targeted query*: a read, or an update/delete with ``multi``, whose filter
  holds equality on the full shard key goes to the one shard owning that
  value; equality (or ``$in``, or a range on a range-key field) on a prefix
  of the key goes to the shards owning that key range; anything else is
  broadcast to every shard (scatter-gather). A hashed field is only usable
  by equality.
- *insert*: each document goes to the shard owning its key (a missing key
  field counts as null); a batch is split among the shards it touches.
- *single-document write* (``updateOne``, ``replaceOne``, ``deleteOne``,
  ``findAndModify``): on the oldest MongoDB the library supports (6.0) it
  must be targeted to one shard by the full shard key, or, for update and
  delete only, carry equality on ``_id`` (then it is broadcast). MongoDB
  7.1 and later accept it without either, through a two-phase write that
  first broadcasts a query; the model holds writes to the 6.0 rule, so a
  write it accepts is valid on every supported version.
- *upsert*: the filter must hold equality on the full shard key, on every
  version.
- *shard key change*: an update that changes a shard key value must be a
  single-document write with equality on the full shard key, run as a
  retryable write or in a transaction; ``multi: true`` cannot change one.
- *$match coalescence*: the pipeline optimiser merges consecutive leading
  ``$match`` stages, so mongos targets an aggregation by all of them.
- *change stream*: opened through mongos, it reads every shard's oplog.
- Index and collection-level commands go to every shard that owns chunks;
  a command on an unsharded collection goes to the database's primary shard.

What it does not model: chunk placement (a prefix-targeted query may still
touch one shard), orphaned documents, collations, and the server's own
optimisations (mongos may target a ``$in`` of few values more tightly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Route", "RouterModel", "Verdict"]


class Route(Enum):
    """Where mongos sends a command, or that it refuses it."""

    ONE = "one shard"
    FEW = "a few shards"
    ALL = "all shards"
    INVALID = "INVALID"
    UNSHARDED = "unsharded collection"
    NOT_ROUTED = "not a collection command"


@dataclass(frozen=True)
class Verdict:
    """The model's decision for one command, with the rule that decided it."""

    route: Route
    rule: str


#: Commands that carry no collection to route (connection and admin housekeeping).
_HOUSEKEEPING = frozenset(
    {
        "hello",
        "ismaster",
        "isMaster",
        "ping",
        "buildInfo",
        "endSessions",
        "configureFailPoint",
        "listCollections",
        "listDatabases",
        "dropDatabase",
        "killCursors",
        "abortTransaction",
        "commitTransaction",
        "getMore",
    }
)
_DDL = frozenset({"createIndexes", "listIndexes", "dropIndexes", "collMod", "collStats", "create"})
_READS = {"find": "filter", "count": "query", "distinct": "query"}


@dataclass(frozen=True)
class _Conditions:
    eq: dict[str, Any]
    in_: frozenset[str]
    ranged: frozenset[str]


def _conditions(filter_: Mapping[str, Any] | None) -> _Conditions:
    """The equality, ``$in`` and range conditions of a filter's top level (and its ``$and``)."""
    eq: dict[str, Any] = {}
    in_: set[str] = set()
    ranged: set[str] = set()

    def walk(node: Mapping[str, Any]) -> None:
        for field, cond in node.items():
            if field == "$and":
                for child in cond:
                    walk(child)
                continue
            if field.startswith("$"):
                continue  # $or, $expr, ...: nothing a router can use
            if isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond):
                if "$eq" in cond:
                    eq[field] = cond["$eq"]
                elif "$in" in cond:
                    in_.add(field)
                elif {"$gt", "$gte", "$lt", "$lte"} & cond.keys():
                    ranged.add(field)
            else:
                eq[field] = cond

    walk(filter_ or {})
    return _Conditions(eq, frozenset(in_), frozenset(ranged))


class RouterModel:
    """Decides the route of each command for one shard key of ``collection``.

    Args:
        key: the shard key, as given to ``shardCollection`` (``1`` or ``"hashed"``).
        collection: the sharded collection; others are unsharded.
    """

    def __init__(self, key: Mapping[str, Any], collection: str = "llm_client_requests") -> None:
        self.key = dict(key)
        self.fields = list(self.key)
        self.collection = collection

    # -- targeting -----------------------------------------------------------

    def full_key(self, filter_: Mapping[str, Any] | None) -> bool:
        """Whether the filter holds equality on every shard key field."""
        eq = _conditions(filter_).eq
        return all(field in eq for field in self.fields)

    def target(self, filter_: Mapping[str, Any] | None) -> Verdict:
        """Where a query with this filter goes (the *targeted query* rule)."""
        cond = _conditions(filter_)
        if all(field in cond.eq for field in self.fields):
            return Verdict(Route.ONE, "targeted query: equality on the full shard key")
        prefix = 0
        for field in self.fields:
            if field not in cond.eq:
                break
            prefix += 1
        if prefix:
            return Verdict(
                Route.FEW, f"targeted query: equality on the key prefix {self.fields[:prefix]}"
            )
        first = self.fields[0]
        if first in cond.in_:
            return Verdict(Route.FEW, f"targeted query: $in on the key's first field {first}")
        if first in cond.ranged and self.key[first] != "hashed":
            return Verdict(Route.FEW, f"targeted query: a range on the range key field {first}")
        return Verdict(Route.ALL, "broadcast: the filter has no shard key prefix")

    # -- writes ----------------------------------------------------------------

    def _changes_key(self, filter_: Mapping[str, Any], update: Any) -> bool:
        """Whether ``update`` can give a matched document another shard key value."""
        eq = _conditions(filter_).eq
        if isinstance(update, Sequence) and not isinstance(update, (str, bytes)):
            return True  # a pipeline update can compute anything
        if not isinstance(update, Mapping):
            return False
        if update and not any(str(k).startswith("$") for k in update):
            # A replacement: every key field must keep the value the filter pins.
            return any(
                f != "_id" and (f not in update or f not in eq or update[f] != eq[f])
                for f in self.fields
            )
        for op, changes in update.items():
            if op == "$setOnInsert" or not isinstance(changes, Mapping):
                continue  # only applies to a new document, whose key the filter gives
            for field in changes:
                top = str(field).split(".")[0]
                if top in self.fields and top != "_id":
                    if op == "$set" and top in eq and changes[field] == eq[top]:
                        continue  # set to the value it already has
                    return True
        return False

    def _single(self, filter_: Mapping[str, Any], kind: str, *, id_allowed: bool) -> Verdict:
        if self.full_key(filter_):
            return Verdict(Route.ONE, f"single-document write ({kind}): full shard key")
        if id_allowed and "_id" in _conditions(filter_).eq:
            return Verdict(Route.ALL, f"single-document write ({kind}): equality on _id, broadcast")
        return Verdict(
            Route.INVALID,
            f"single-document write ({kind}) without the full shard key"
            + (" or _id" if id_allowed else "")
            + " (refused before MongoDB 7.1)",
        )

    def _update(
        self, filter_: Mapping[str, Any], update: Any, *, multi: bool, upsert: bool, retryable: bool
    ) -> Verdict:
        changes_key = self._changes_key(filter_, update)
        if upsert and not self.full_key(filter_):
            return Verdict(Route.INVALID, "upsert without equality on the full shard key")
        if changes_key:
            if multi:
                return Verdict(Route.INVALID, "shard key change in a multi update")
            if not self.full_key(filter_):
                return Verdict(Route.INVALID, "shard key change without the full shard key")
            if not retryable:
                return Verdict(Route.INVALID, "shard key change outside a retryable write")
            return Verdict(Route.ONE, "shard key change: full shard key, retryable write")
        if upsert:
            return Verdict(Route.ONE, "upsert: full shard key")
        if multi:
            return self.target(filter_)
        return self._single(filter_, "updateOne", id_allowed=True)

    def route(self, name: str, command: Mapping[str, Any]) -> list[Verdict]:
        """The verdicts for one command: one per statement for writes, else one."""
        if name in _HOUSEKEEPING or name not in command:
            return [Verdict(Route.NOT_ROUTED, "housekeeping")]
        target = command[name]
        if not isinstance(target, str) or target != self.collection:
            if name == "aggregate" and target == 1:
                return [Verdict(Route.NOT_ROUTED, "database-level aggregate")]
            return [Verdict(Route.UNSHARDED, "unsharded collection: the primary shard")]
        retryable = "txnNumber" in command
        if name in _DDL:
            return [Verdict(Route.ALL, "index or collection command: every shard with chunks")]
        if name in _READS:
            return [self.target(command.get(_READS[name]))]
        if name == "aggregate":
            pipeline = command.get("pipeline") or []
            first = pipeline[0] if pipeline else {}
            if "$changeStream" in first:
                return [Verdict(Route.ALL, "change stream: every shard's oplog")]
            if "$collStats" in first or "$indexStats" in first:
                return [Verdict(Route.ALL, "collection statistics: every shard")]
            # "$match + $match coalescence": the optimiser merges leading
            # $match stages before mongos targets the pipeline.
            leading: list[Any] = []
            for stage in pipeline:
                if "$match" not in stage:
                    break
                leading.append(stage["$match"])
            return [self.target({"$and": leading} if leading else None)]
        if name == "insert":
            docs = command.get("documents", [])
            if len(docs) == 1:
                return [Verdict(Route.ONE, "insert: the shard owning the document's key")]
            return [Verdict(Route.FEW, "insert: the batch split among the shards owning its keys")]
        if name == "update":
            return [
                self._update(
                    u.get("q", {}),
                    u.get("u"),
                    multi=bool(u.get("multi")),
                    upsert=bool(u.get("upsert")),
                    retryable=retryable,
                )
                for u in command.get("updates", [])
            ]
        if name == "delete":
            out = []
            for d in command.get("deletes", []):
                if d.get("limit") == 1:
                    out.append(self._single(d.get("q", {}), "deleteOne", id_allowed=True))
                else:
                    out.append(self.target(d.get("q")))
            return out
        if name == "findAndModify":
            query = command.get("query", {})
            if command.get("remove"):
                return [self._single(query, "findAndModify remove", id_allowed=False)]
            update = command.get("update")
            upsert = bool(command.get("upsert"))
            if upsert or self._changes_key(query, update):
                return [
                    self._update(query, update, multi=False, upsert=upsert, retryable=retryable)
                ]
            return [self._single(query, "findAndModify", id_allowed=False)]
        return [Verdict(Route.INVALID, f"unknown command {name!r}: the model cannot route it")]
