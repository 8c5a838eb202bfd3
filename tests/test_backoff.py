"""Retry delays: exponential growth, a cap, and full jitter."""

from __future__ import annotations

import random

import pytest

from gotaskq.backoff import retry_delay


class Highest(random.Random):
    """A Random whose uniform(a, b) is always b: exposes the bound the jitter draws under."""

    def uniform(self, a: float, b: float) -> float:
        return b


def bound(failures: int, base: float, cap: float) -> float:
    return retry_delay(failures, base, cap, Highest())


@pytest.mark.parametrize(("base", "cap"), [(0.1, 5.0), (1.0, 5.0), (0.01, 0.05), (2.0, 2.0)])
def test_every_delay_lies_within_the_full_jitter_window(base: float, cap: float) -> None:
    rng = random.Random(7)
    for failures in range(1, 30):
        window = min(cap, base * 2 ** (failures - 1))
        for _ in range(50):
            d = retry_delay(failures, base, cap, rng)
            assert 0.0 <= d <= window, (failures, d, window)


def test_the_window_doubles_with_each_failure_until_the_cap() -> None:
    assert [bound(n, 0.1, 5.0) for n in range(1, 9)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_the_first_failure_uses_the_base() -> None:
    assert bound(1, 1.0, 5.0) == 1.0
    assert bound(0, 1.0, 5.0) == 1.0, "zero failures is treated like the first"


def test_huge_failure_counts_stay_capped() -> None:
    assert bound(10_000, 1.0, 5.0) == 5.0
    rng = random.Random(3)
    assert all(0 <= retry_delay(10_000, 1.0, 5.0, rng) <= 5.0 for _ in range(100))


def test_delays_grow_on_average() -> None:
    rng = random.Random(11)
    means = [sum(retry_delay(n, 0.1, 100.0, rng) for _ in range(2000)) / 2000 for n in (1, 3, 5)]
    assert means[0] < means[1] < means[2]
    for n, mean in zip((1, 3, 5), means, strict=True):
        assert mean == pytest.approx(0.1 * 2 ** (n - 1) / 2, rel=0.1)  # uniform: half the window


def test_jitter_varies_and_a_seed_repeats_it() -> None:
    a = [retry_delay(4, 1.0, 5.0, random.Random(42)) for _ in range(3)]
    assert len(set(a)) == 1, "the same seed gives the same delay"
    rng = random.Random(42)
    spread = [retry_delay(4, 1.0, 5.0, rng) for _ in range(200)]
    assert len(set(spread)) == 200, "full jitter: no two retries wait exactly alike"
    assert min(spread) < 1.0 and max(spread) > 4.0, "the draws cover the window"


def test_without_an_rng_the_module_random_is_used() -> None:
    delays = {retry_delay(3, 1.0, 5.0) for _ in range(50)}
    assert len(delays) > 1
    assert all(0 <= d <= 4.0 for d in delays)
