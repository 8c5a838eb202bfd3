"""Per-minute queue stats: done/failed/dead counted by the transitions themselves."""

from __future__ import annotations

from gotaskq.backends.base import Backend, Completion
from gotaskq.job import NewJob


async def test_stats_count_done_failed_and_dead(backend: Backend) -> None:
    for i in range(3):
        await backend.enqueue(NewJob.build("t", {"i": i}, max_retries=0 if i == 2 else 3))
    batch = await backend.claim("default", 3, 30_000)
    by_payload = {c.job.payload["i"]: c for c in batch.jobs}
    await backend.complete("default", [Completion(by_payload[0].job.id, by_payload[0].token, b"null")])
    await backend.fail(by_payload[1].job, by_payload[1].token, "retry me", 60_000)
    await backend.fail(by_payload[2].job, by_payload[2].token, "dead now", 0)
    stats = await backend.queue_stats("default", 5)
    assert len(stats) == 5
    assert stats[-1].minute >= stats[0].minute + 4
    assert sum(s.done for s in stats) == 1
    assert sum(s.failed for s in stats) == 2
    assert sum(s.dead for s in stats) == 1
    assert stats[-1].to_dict()["minute"].endswith(":00.000Z")
