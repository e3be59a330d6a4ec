"""A write load spread over shards by a shard key: a simulation of chunks and the balancer.

The workload: 1,000 clients whose activity follows a Zipf law (the busiest
client sends about 13% of all calls), sessions whose sizes follow a Zipf law
(most have a few calls, a few have thousands), and 10% of the records
without a session key. Records get increasing ids in time order, as
ObjectIds do.

The cluster model:

- *Chunks* are cut from the first three quarters of the day (the history)
  in shard-key order, at most ``chunk_docs`` records each, and only between
  two different key values: MongoDB splits a chunk at a key value, never
  inside one, so a run of equal values longer than a chunk stays whole (a
  jumbo chunk).
- *Placement*: each shard holds one contiguous run of chunks with the same
  number of records (the balancer evens data per shard; keeping neighbours
  together is the pessimistic case for a range key).
- *Load*: the last quarter of the day is routed by the same chunk table,
  each record to the chunk whose range holds its key.

Hashed fields use a stand-in for MongoDB's hash: the first 8 bytes of the
MD5 of the value's BSON encoding, read as a signed 64-bit integer. MongoDB's
``convertShardKeyToHashed`` is also the first 8 bytes of an MD5, over its own
canonical encoding of the value, so the stand-in differs in the exact values
but shares what the simulation relies on: equal values hash equally and
distinct values spread uniformly over 64 bits.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bson

__all__ = ["Spread", "Workload", "hashed", "spread", "workload"]

DAY = 86_400.0


@dataclass(frozen=True)
class Workload:
    """Records as (client, session key or None, created_at seconds, id rank), in time order."""

    records: list[tuple[int, str | None, float, int]]
    sessions: int
    largest_session: int
    session_zipf: float


def _zipf_sampler(rng: random.Random, n: int, s: float) -> Callable[[], int]:
    weights = [k**-s for k in range(1, n + 1)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    return lambda: bisect.bisect_left(cumulative, rng.random() * total) + 1


def workload(
    *,
    records: int = 100_000,
    clients: int = 1_000,
    sessionless: float = 0.10,
    session_zipf: float = 2.0,
    largest_session: int = 2_000,
    seed: int = 7,
) -> Workload:
    """A day of calls shaped as the module docstring describes."""
    rng = random.Random(seed)
    client_rank = _zipf_sampler(rng, clients, 1.0)
    # Client ids are ObjectIds in creation order, unrelated to how busy a client is.
    order = list(range(clients))
    rng.shuffle(order)
    session_size = _zipf_sampler(rng, largest_session, session_zipf)
    rows: list[tuple[int, str | None, float]] = []
    target = int(records * (1 - sessionless))
    sessions = biggest = 0
    while len(rows) < target:
        size = min(session_size(), target - len(rows))
        client = order[client_rank() - 1]
        key = f"{rng.getrandbits(128):032x}"
        # A long session runs for hours: a call a minute on average.
        span = min(DAY, 60.0 * size)
        start = rng.random() * (DAY - span)
        rows.extend((client, key, start + rng.random() * span) for _ in range(size))
        sessions += 1
        biggest = max(biggest, size)
    rows.extend(
        (order[client_rank() - 1], None, rng.random() * DAY) for _ in range(records - len(rows))
    )
    rows.sort(key=lambda r: r[2])
    records_ = [(c, s, t, rank) for rank, (c, s, t) in enumerate(rows)]
    return Workload(records_, sessions, biggest, session_zipf)


def hashed(value: Any) -> int:
    """The stand-in for MongoDB's hash of one field value (see the module docstring)."""
    digest = hashlib.md5(bson.encode({"": value})).digest()
    return int.from_bytes(digest[:8], "little", signed=True)


def _field(name: str, record: tuple[int, str | None, float, int]) -> Any:
    client, session, created, rank = record
    if name == "llm_client_id":
        return client
    if name == "session_key":
        return (0, "") if session is None else (1, session)  # null sorts first
    if name == "created_at":
        return int(created * 1000)  # BSON dates keep milliseconds
    return rank  # _id


def key_function(
    key: Mapping[str, Any],
) -> Callable[[tuple[int, str | None, float, int]], tuple[Any, ...]]:
    """The sort value of a record under ``key`` (hashed fields replaced by their hash)."""
    fields = list(key.items())

    def value(record: tuple[int, str | None, float, int]) -> tuple[Any, ...]:
        out: list[Any] = []
        for name, kind in fields:
            if kind == "hashed":
                raw = {"llm_client_id": record[0], "session_key": record[1]}.get(name, record[3])
                out.append(hashed(raw))
            else:
                out.append(_field(name, record))
        return tuple(out)

    return value


#: Key values per (workload, key): the same key is spread over 4 and 16 shards.
_VALUES: dict[tuple[int, tuple[tuple[str, Any], ...]], list[tuple[Any, ...]]] = {}


@dataclass(frozen=True)
class Spread:
    """How one key spreads the load over the shards."""

    shards: int
    chunks: int
    busiest_vs_mean: float
    #: The largest range at the end of the day, before any split.
    largest_chunk: int
    #: The most records sharing one key value: a chunk no split can make smaller.
    largest_unsplittable: int
    chunk_docs: int

    @property
    def jumbo(self) -> bool:
        """Whether some key value holds more records than a chunk may (a jumbo chunk)."""
        return self.largest_unsplittable > self.chunk_docs


def spread(load: Workload, key: Mapping[str, Any], *, shards: int, chunk_docs: int = 250) -> Spread:
    """Cut chunks from the history, place them, and route the rest of the day to them."""
    cache_key = (id(load), tuple(key.items()))
    values = _VALUES.get(cache_key)
    if values is None:
        values = _VALUES[cache_key] = list(map(key_function(key), load.records))
    cut = next(i for i, r in enumerate(load.records) if r[2] >= 0.75 * DAY)
    history = sorted(values[:cut])
    bounds: list[tuple[Any, ...]] = []  # the lowest key of each chunk but the first
    sizes: list[int] = []
    start = 0
    while start < len(history):
        end = min(start + chunk_docs, len(history))
        while end < len(history) and history[end] == history[end - 1]:
            end += 1  # never split inside one key value
        if start:
            bounds.append(history[start])
        sizes.append(end - start)
        start = end
    # Contiguous runs of chunks holding about the same number of records.
    per_shard = len(history) / shards
    owner: list[int] = []
    held = 0
    for size in sizes:
        owner.append(min(int(held / per_shard), shards - 1))
        held += size
    load_per_shard: Counter[int] = Counter()
    for record_key in values[cut:]:
        chunk = bisect.bisect_right(bounds, record_key)
        sizes[chunk] += 1
        load_per_shard[owner[chunk]] += 1
    written = len(load.records) - cut
    busiest = max(load_per_shard.values())
    same_value = Counter(values)
    return Spread(
        shards=shards,
        chunks=len(sizes),
        busiest_vs_mean=busiest / (written / shards),
        largest_chunk=max(sizes),
        largest_unsplittable=max(same_value.values()),
        chunk_docs=chunk_docs,
    )
