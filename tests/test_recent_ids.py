"""The Redis backend's id -> queue cache (``lookup.RecentIds``): plain Python, no server."""

from __future__ import annotations

import sys

from gotaskq.backends.redis.lookup import GENERATION_SIZE, GENERATIONS, RecentIds
from gotaskq.ids import MAX_SEQ, SEQ_BITS, Snowflake


def test_the_id_cache_drops_old_ids_a_generation_at_a_time_and_forgets_everywhere() -> None:
    recent = RecentIds(generation_size=100, generations=3)
    batches = [[f"{b}-{i}" for i in range(7)] for b in range(100)]
    for batch in batches:
        recent.add(batch, "q")
        assert len(recent.generations) <= 3 and all(len(g) <= 100 for g in recent.generations)
    assert all(recent.get(jid) == "q" for batch in batches[-28:] for jid in batch)  # 2 full generations
    assert recent.get(batches[0][0]) is None
    recent.add(["again"], "old")
    for batch in batches[:15]:  # "again" moves into an older generation; add it to the newest too
        recent.add(batch, "q")
    recent.add(["again"], "old")
    assert sum("again" in g for g in recent.generations) == 2
    recent.discard(["again"])
    assert recent.get("again") is None


def test_the_id_cache_never_grows_a_dict_table_past_the_size_that_stalls() -> None:
    # An OrderedDict of 100,000 ids grew its table at 87,381 (~15 ms in one insert, under load).
    recent = RecentIds()
    for start in range(0, 5 * GENERATION_SIZE, 100):
        recent.add([str(i) for i in range(start, start + 100)], "q")
    assert len(recent.generations) == GENERATIONS
    grown: dict[str, None] = {}
    for i in range(43_691):  # where a dict grown by inserts takes a table of 131,072 slots
        grown[str(i)] = None
    assert max(sys.getsizeof(g) for g in recent.generations) < sys.getsizeof(grown)
    assert recent.get(str(5 * GENERATION_SIZE - 1)) == "q"


def _ids(source: Snowflake, n: int) -> list[str]:
    return [str(i) for i in source.next_many(n)]


def test_an_enqueue_call_is_one_entry_found_by_any_of_its_ids() -> None:
    recent = RecentIds()
    a, b = Snowflake(7), Snowflake(8)
    first, second, other = _ids(a, 50), _ids(a, 3), _ids(b, 5)
    recent.add_run(int(second[0]), int(second[-1]), "q2")  # answered before the call minted first
    recent.add_run(int(first[0]), int(first[-1]), "q1")
    assert list(recent.firsts) == sorted(recent.firsts)
    assert all(recent.get(jid) == "q1" for jid in first)
    assert all(recent.get(jid) == "q2" for jid in second)
    assert all(recent.get(jid) is None for jid in other)  # another process's ids
    assert recent.get(str(int(first[0]) - 1)) is None
    assert recent.get(str(int(second[-1]) + 1)) is None
    assert recent.get("not-an-id") is None and recent.get("²") is None
    recent.add_run(int(first[0]), int(first[-1]), "q1")  # the same call again: no second entry
    assert len(recent.firsts) == 2
    assert recent.get(str(2**63 + 5)) is None and recent.get("1" * 25) is None
    recent.add_run(2**63 - 5, 2**63 + 5, "q3")  # not a run of ours: ignored, the arrays stay in step
    recent.add_run(9, 3, "q3")
    assert len(recent.firsts) == len(recent.lasts) == len(recent.queues) == 2


def test_a_run_that_borrowed_the_next_millisecond_is_not_found_for_other_nodes_ids() -> None:
    recent = RecentIds()
    ids = Snowflake(5).next_many(MAX_SEQ + 10)  # past one millisecond's sequence
    recent.add_run(ids[0], ids[-1], "q")
    assert recent.get(str(ids[MAX_SEQ])) == "q" and recent.get(str(ids[-1])) == "q"
    between = ids[MAX_SEQ] + (1 << SEQ_BITS)  # the first millisecond, node 6: not this run's
    assert ids[0] < between < ids[-1]
    assert recent.get(str(between)) is None


def test_the_run_list_drops_its_older_half_when_full() -> None:
    recent = RecentIds(max_runs=10)
    source = Snowflake(1)
    calls = [_ids(source, 2) for _ in range(11)]
    for call in calls:
        recent.add_run(int(call[0]), int(call[-1]), "q")
    assert len(recent.firsts) == len(recent.lasts) == len(recent.queues) == 6
    assert recent.get(calls[0][0]) is None and recent.get(calls[-1][-1]) == "q"
    recent.clear()
    assert recent.get(calls[-1][-1]) is None
