"""The lock-free counters and histograms write what prometheus_client's own would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gotaskq.loop_metrics import LoopCounter, LoopHistogram
from gotaskq.metrics import _LATENCY_BUCKETS, Metrics


def text(registry: CollectorRegistry) -> list[str]:
    # prometheus_client adds *_created samples (creation times); ours have none.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_same_text_as_prometheus_client() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    c1 = Counter("jobs_total", "doc", ["queue", "status"], registry=theirs)
    h1 = Histogram("wait_seconds", "doc", ["queue"], buckets=_LATENCY_BUCKETS, registry=theirs)
    c2 = LoopCounter("jobs_total", "doc", ["queue", "status"])
    h2 = LoopHistogram("wait_seconds", "doc", ["queue"], _LATENCY_BUCKETS)
    ours.register(c2)
    ours.register(h2)
    rng = random.Random(7)
    # On a bound, just past it, zero, beyond the last bucket, and spread values.
    values = [0.0, 0.001, 0.0011, 1, 2.5, 299.9, 300, 300.1, 1e9] + [rng.expovariate(2) for _ in range(500)]
    for q in ("a", "b"):
        for v in values:
            h1.labels(q).observe(v)
            h2.labels(q).observe(v)
        c1.labels(q, "done").inc(3)
        c2.labels(q, "done").inc(3)
        c1.labels(q, "dead")  # a series at zero
        c2.labels(q, "dead")
    assert text(ours) == text(theirs)
    assert 'wait_seconds_bucket{le="+Inf",queue="a"} 509.0' in text(ours)


def test_wrong_label_count_is_refused() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        LoopCounter("x_total", "doc", ["queue", "status"]).labels("q")
    with pytest.raises(ValueError, match="takes labels"):
        LoopHistogram("x_seconds", "doc", ["queue"], (1, 2)).labels("q", "extra")


def test_app_metrics_render_the_hot_path_series() -> None:
    m = Metrics()
    m.queue_created("q")
    m.processed.labels("q", "done").inc()
    m.wait.labels("q").observe(0.002)
    out = m.render().decode()
    assert 'gotaskq_jobs_processed_total{queue="q",status="done"} 1.0' in out
    assert 'gotaskq_jobs_processed_total{queue="q",status="dead"} 0.0' in out
    assert 'gotaskq_jobs_enqueued_total{queue="q"} 0.0' in out
    assert 'gotaskq_job_wait_seconds_bucket{le="0.0025",queue="q"} 1.0' in out
    assert "# TYPE gotaskq_job_duration_seconds histogram" in out
