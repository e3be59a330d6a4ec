"""The router model itself: it must refuse what mongos refuses, or the simulation proves nothing."""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from llmreq_mongo._reports.rollups import _writes
from llmreq_mongo._sharding import SHARD_KEY

from ._router import Route, RouterModel

CID, SKEY, RID = ObjectId(), "s1", ObjectId()
FULL = {"llm_client_id": CID, "session_key": SKEY, "_id": RID}
MODEL = RouterModel(SHARD_KEY)


def update(
    q: dict[str, object], u: object, *, multi: bool = False, upsert: bool = False, txn: bool = True
) -> Route:
    command: dict[str, object] = {
        "update": "llm_client_requests",
        "updates": [{"q": q, "u": u, "multi": multi, "upsert": upsert}],
    }
    if txn:
        command["txnNumber"] = 1
    (verdict,) = MODEL.route("update", command)
    return verdict.route


def find(filter_: dict[str, object], model: RouterModel = MODEL) -> Route:
    return model.route("find", {"find": "llm_client_requests", "filter": filter_})[0].route


def test_an_upsert_needs_the_full_shard_key() -> None:
    assert update({"_id": RID}, {"$set": {"x": 1}}, upsert=True) is Route.INVALID
    assert (
        update({"_id": RID, "llm_client_id": CID}, {"$set": {"x": 1}}, upsert=True) is Route.INVALID
    )
    assert update(FULL, {"$set": {"x": 1}}, upsert=True) is Route.ONE


def test_update_one_needs_the_key_or_id_and_update_many_may_broadcast() -> None:
    assert update({"request.model": "m"}, {"$set": {"x": 1}}) is Route.INVALID
    assert update({"_id": RID}, {"$set": {"x": 1}}) is Route.ALL
    assert update({"request.model": "m"}, {"$set": {"x": 1}}, multi=True) is Route.ALL
    assert update({"llm_client_id": CID}, {"$set": {"x": 1}}, multi=True) is Route.FEW


def test_changing_a_shard_key_value_takes_one_keyed_retryable_write() -> None:
    change = {"$set": {"session_key": "other"}}
    assert update({"llm_client_id": CID}, change, multi=True) is Route.INVALID
    assert update({"_id": RID}, change) is Route.INVALID
    assert update(FULL, change, txn=False) is Route.INVALID
    assert update(FULL, change) is Route.ONE
    # Setting a key field to the value the filter pins changes nothing.
    assert update(FULL, {"$set": {"session_key": SKEY}}, txn=False) is Route.ONE
    # A replacement that keeps the key is fine; one that drops it changes it.
    assert update(FULL, {"llm_client_id": CID, "session_key": SKEY, "x": 1}, txn=False) is Route.ONE
    assert update(FULL, {"llm_client_id": CID, "x": 1}, txn=False) is Route.INVALID


def test_delete_and_find_and_modify_rules() -> None:
    def delete(q: dict[str, object], limit: int) -> Route:
        cmd = {"delete": "llm_client_requests", "deletes": [{"q": q, "limit": limit}]}
        return MODEL.route("delete", cmd)[0].route

    assert delete({"created_at": {"$lt": 1}}, 0) is Route.ALL
    assert delete({"created_at": {"$lt": 1}}, 1) is Route.INVALID
    assert delete({"_id": RID}, 1) is Route.ALL
    assert delete(FULL, 1) is Route.ONE

    def fam(query: dict[str, object], **rest: object) -> Route:
        cmd = {"findAndModify": "llm_client_requests", "query": query, **rest}
        return MODEL.route("findAndModify", cmd)[0].route

    assert fam({"_id": RID}, update={"$set": {"x": 1}}) is Route.INVALID
    assert fam({"_id": RID}, update={"$set": {"x": 1}}, upsert=True) is Route.INVALID
    assert fam(FULL, update={"$set": {"x": 1}}, upsert=True) is Route.ONE
    assert fam({"_id": RID}, remove=True) is Route.INVALID


def test_targeting_by_prefix_and_by_hash() -> None:
    assert find({}) is Route.ALL
    assert find({"session_key": SKEY}) is Route.ALL  # not a prefix of this key
    assert find({"llm_client_id": CID}) is Route.FEW
    assert find({"llm_client_id": {"$in": [CID]}}) is Route.FEW
    assert find({"llm_client_id": {"$gt": CID}}) is Route.FEW
    assert find({"$and": [{"llm_client_id": CID}, {"session_key": SKEY}], "_id": RID}) is Route.ONE
    hashed = RouterModel({"session_key": "hashed"})
    assert find({"session_key": SKEY}, hashed) is Route.ONE
    assert find({"session_key": {"$gt": SKEY}}, hashed) is Route.ALL
    pipeline = [
        {"$match": {"session_key": SKEY}},
        {"$match": {"llm_client_id": CID}},
        {"$group": {"_id": 1}},
    ]
    aggregate = {"aggregate": "llm_client_requests", "pipeline": pipeline}
    assert MODEL.route("aggregate", aggregate)[0].route is Route.FEW  # $match coalescence
    stream = {"aggregate": "llm_client_requests", "pipeline": [{"$changeStream": {}}]}
    assert MODEL.route("aggregate", stream)[0].route is Route.ALL
    assert MODEL.route("find", {"find": "llm_clients", "filter": {}})[0].route is Route.UNSHARDED


async def test_the_rollup_writes_carry_the_full_key(llmreq_db: object) -> None:
    row = {
        "_id": {"c": CID, "s": SKEY},
        "count": 2,
        "messages": 2,
        "first": {"t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "i": RID},
        "last": {"t": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "i": RID},
    }
    since = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for q, u, upsert in _writes(row, since, since + dt.timedelta(days=1), since):
        assert update(q, u, upsert=upsert, txn=False) is Route.ONE
