"""The chosen shard key spreads a realistic write load; a timestamp-first key does not.

A simulation (``_load.py`` describes the workload and the cluster model). It
prints, per candidate key and shard count, the busiest shard's share of the
day's last quarter of writes relative to the mean, and the largest chunk at
the end of the day; docs/scaling.md shows the figures.
"""

from __future__ import annotations

import pytest

from llmreq_mongo._sharding import SHARD_KEY

from ._load import Spread, Workload, spread, workload

#: The busiest shard may take at most this much more than its fair share.
BOUND = 1.5

CANDIDATES: dict[str, dict[str, object]] = {
    "{session_key: hashed}": {"session_key": "hashed"},
    "{llm_client_id, created_at}": {"llm_client_id": 1, "created_at": 1},
    "{llm_client_id, session_key, _id} (chosen)": dict(SHARD_KEY),
    "{llm_client_id, session_key: hashed}": {"llm_client_id": 1, "session_key": "hashed"},
    "{created_at} (naive)": {"created_at": 1},
}


@pytest.fixture(scope="module")
def day() -> Workload:
    return workload()


def table(day: Workload) -> dict[tuple[str, int], Spread]:
    """Every candidate over 4 and 16 shards, printed as a Markdown table."""
    out = {
        (name, n): spread(day, key, shards=n) for name, key in CANDIDATES.items() for n in (4, 16)
    }
    print(
        f"\n{len(day.records):,} records, 1,000 clients, {day.sessions:,} sessions "
        f"(Zipf exponent {day.session_zipf}) "
        f"(largest {day.largest_session:,} calls), 10% without a session key; "
        f"chunk budget {out[next(iter(out))].chunk_docs} records"
    )
    print("| key | shards | chunks | busiest shard / mean | largest range | largest unsplittable |")
    print("|---|---|---|---|---|---|")
    for (name, n), s in out.items():
        print(
            f"| {name} | {n} | {s.chunks} | {s.busiest_vs_mean:.2f} | {s.largest_chunk:,} | "
            f"{s.largest_unsplittable:,}{' (jumbo)' if s.jumbo else ''} |"
        )
    return out


@pytest.fixture(scope="module")
def figures(day: Workload) -> dict[tuple[str, int], Spread]:
    return table(day)


def test_with_heavier_tailed_sessions_still_no_key_value_is_unsplittable() -> None:
    # Zipf exponent 1.3: a thousand sessions carry the day, each a percent of it.
    # The spread figures are printed, not bounded: one session's inserts go to
    # one chunk under every key that keeps a session together (docs/scaling.md).
    heavy = table(workload(session_zipf=1.3))
    assert heavy[("{llm_client_id, session_key, _id} (chosen)", 16)].largest_unsplittable == 1


@pytest.mark.parametrize("shards", [4, 16])
def test_the_chosen_key_spreads_writes_and_never_makes_a_jumbo_chunk(
    figures: dict[tuple[str, int], Spread], shards: int
) -> None:
    chosen = figures[("{llm_client_id, session_key, _id} (chosen)", shards)]
    assert chosen.busiest_vs_mean <= BOUND
    # `_id` ends the key: every value is unique, so every chunk can split.
    assert chosen.largest_unsplittable == 1 and not chosen.jumbo


@pytest.mark.parametrize("shards", [4, 16])
def test_a_timestamp_key_sends_every_insert_to_one_shard(
    figures: dict[tuple[str, int], Spread], shards: int
) -> None:
    naive = figures[("{created_at} (naive)", shards)]
    assert naive.busiest_vs_mean > BOUND
    assert naive.busiest_vs_mean == pytest.approx(shards)  # all of it on one shard


def test_a_session_hash_piles_the_sessionless_records_into_one_chunk(
    figures: dict[tuple[str, int], Spread], day: Workload
) -> None:
    by_session = figures[("{session_key: hashed}", 16)]
    # Every record without a session key shares one shard key value.
    assert by_session.jumbo
    assert by_session.largest_unsplittable >= 0.09 * len(day.records)
