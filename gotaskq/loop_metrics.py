"""Counters and histograms for the per-job hot path, updated without locks.

prometheus_client guards every ``inc`` and ``observe`` with a lock (five per job: a counter
and two histograms), about 9% of a worker's CPU on no-op jobs. These are written only from
the event loop's thread (the worker and the API run there), so a plain dict needs no lock.
A scrape from another thread (``prometheus_client.start_http_server``) copies the dict in one
C call under the GIL and may see a histogram between its sum and its bucket update; no
count is ever lost, as there is one writer. They export through prometheus_client's own
metric families, so the text format is unchanged.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

C = TypeVar("C")


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Labelled(Generic[C]):
    """One child per label values, made on first use, as prometheus_client's ``labels``."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._children: dict[tuple[str, ...], C] = {}

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new_child()
        return child


class LoopCounter(_Labelled[CounterChild]):
    """A labelled counter; ``labels(*values).inc(n)`` as with prometheus_client."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_Labelled[HistogramChild]):
    """A labelled histogram; ``labels(*values).observe(x)`` as with prometheus_client."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        self._les = tuple(_le(b) for b in (*self.bounds, math.inf))

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for le, n in zip(self._les, counts, strict=True):
                cumulative += n
                buckets.append((le, float(cumulative)))
            family.add_metric(list(values), buckets, sum_value=total)
        yield family


def _le(bound: float) -> str:
    """The ``le`` label as prometheus_client's Histogram writes it: 0.005, 1.0, +Inf."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]
