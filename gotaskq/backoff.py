"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random


def retry_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next attempt: ``random(0, min(cap, base * 2**(failures - 1)))``.

    ``failures`` counts failed attempts so far (1 for the first). Full jitter spreads a burst of
    failures out instead of retrying them in lockstep.
    """
    exp = min(max(failures - 1, 0), 62)
    return (rng or random).uniform(0.0, min(cap, base * (2**exp)))
