"""The Redis backend's id -> queue cache (``lookup.RecentIds``): plain Python, no server."""

from __future__ import annotations

import sys

from gotaskq.backends.redis.lookup import GENERATION_SIZE, GENERATIONS, RecentIds


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
