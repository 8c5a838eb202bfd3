"""Snowflake ids: unique, time-ordered, 63-bit, distinct per node."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest

from gotaskq import ids
from gotaskq.ids import MAX_NODE, NODE_BITS, SEQ_BITS, Snowflake, timestamp_ms


def test_ids_are_unique_increasing_and_fit_in_63_bits() -> None:
    gen = Snowflake(node=7)
    out = [gen.next() for _ in range(100_000)]
    assert len(set(out)) == len(out)
    assert all(a < b for a, b in pairwise(out))
    assert all(0 < i < 2**63 for i in out), "ids must fit a signed 64-bit integer"
    assert all((i >> SEQ_BITS) & MAX_NODE == 7 for i in out[::997])


def test_ids_are_decimal_strings_that_sort_like_numbers() -> None:
    gen = Snowflake(node=1)
    a, b = gen.next_str(), gen.next_str()
    assert a.isdigit() and b.isdigit() and int(a) < int(b)


def test_different_nodes_never_collide() -> None:
    gens = [Snowflake(node=n) for n in (1, 2, 3)]
    seen: set[int] = set()
    for _ in range(5_000):
        for g in gens:
            i = g.next()
            assert i not in seen
            seen.add(i)
    assert Snowflake(1).next() != Snowflake(2).next()


def test_node_ids_wrap_into_ten_bits() -> None:
    assert Snowflake(MAX_NODE + 2).node == 1
    i = Snowflake(MAX_NODE + 2).next()
    assert (i >> SEQ_BITS) & MAX_NODE == 1


def test_timestamp_round_trip() -> None:
    before = int(time.time() * 1000)
    i = Snowflake(node=5).next()
    after = int(time.time() * 1000)
    assert before <= timestamp_ms(i) <= after
    assert i >> (NODE_BITS + SEQ_BITS) == timestamp_ms(i) - ids.EPOCH_MS


def test_a_clock_going_back_keeps_ids_increasing(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.000]
    monkeypatch.setattr(ids.time, "time", lambda: now[0])
    gen = Snowflake(node=3)
    first = gen.next()
    now[0] -= 5.0  # NTP stepped the clock back five seconds
    second = gen.next()
    assert second > first
    assert timestamp_ms(second) == timestamp_ms(first)


def test_a_full_millisecond_borrows_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids.time, "time", lambda: 1_800_000_000.000)
    gen = Snowflake(node=3)
    out = [gen.next() for _ in range((1 << SEQ_BITS) + 10)]
    assert len(set(out)) == len(out)
    assert all(a < b for a, b in pairwise(out))
    assert timestamp_ms(out[-1]) == timestamp_ms(out[0]) + 1


def test_ids_are_unique_across_threads() -> None:
    gen = Snowflake(node=9)
    results: list[list[int]] = [[] for _ in range(4)]

    def work(slot: list[int]) -> None:
        for _ in range(5_000):
            slot.append(gen.next())

    threads = [threading.Thread(target=work, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    flat = [i for r in results for i in r]
    assert len(flat) == 20_000 and len(set(flat)) == 20_000


@pytest.mark.parametrize("sizes", [[1], [5000], [3, 4096, 1, 0, 7000, 2], [0, 0]])
def test_next_many_gives_what_next_would(monkeypatch: pytest.MonkeyPatch, sizes: list[int]) -> None:
    """A frozen clock (the hardest case: every id borrows milliseconds), mixing both calls."""
    monkeypatch.setattr(ids.time, "time", lambda: 1_800_000_000.000)
    one_by_one, in_bulk = Snowflake(node=9), Snowflake(node=9)
    expected, got = [], []
    for i, n in enumerate(sizes):
        expected += [one_by_one.next() for _ in range(n)]
        got += in_bulk.next_many(n)
        if i % 2:
            expected.append(one_by_one.next())
            got.append(in_bulk.next())
    assert got == expected
    assert all(a < b for a, b in pairwise(got))


def test_next_many_with_a_moving_clock_stays_unique_and_increasing(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_800_000_000.000]
    monkeypatch.setattr(ids.time, "time", lambda: now[0])
    gen = Snowflake(node=1)
    out: list[int] = []
    for step in (0.0, 0.0005, -2.0, 0.003, 0.0):
        now[0] += step
        out += gen.next_many(3000)
        out.append(gen.next())
    assert all(a < b for a, b in pairwise(out))
