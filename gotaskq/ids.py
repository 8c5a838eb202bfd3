"""Snowflake ids: 64-bit, time-ordered, unique across processes that hold distinct node ids."""

from __future__ import annotations

import threading
import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
NODE_BITS = 10
SEQ_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
MAX_SEQ = (1 << SEQ_BITS) - 1


class Snowflake:
    """41 bits of milliseconds, 10 bits of node id, 12 bits of sequence.

    The Redis backend leases its node id in Redis (backends/redis/node_lease.py), so no two
    live processes sharing a Redis hold the same one; the enqueue script also refuses a call
    whose id is taken, before writing any of it, so even a clash cannot clobber a job.
    """

    def __init__(self, node: int) -> None:
        self.node = node & MAX_NODE
        self._last = -1
        self._seq = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        return self.next_many(1)[0]

    def next_many(self, n: int) -> list[int]:
        """``n`` increasing ids under one lock and one clock read (a bulk enqueue takes 1,000)."""
        with self._lock:
            now = max(int(time.time() * 1000) - EPOCH_MS, self._last)  # the clock went back: stay monotonic
            seq = self._seq + 1 if now == self._last else 0
            node = self.node << SEQ_BITS
            out = []
            for _ in range(n):
                if seq > MAX_SEQ:
                    now, seq = now + 1, 0  # borrow the next millisecond
                out.append((now << (NODE_BITS + SEQ_BITS)) | node | seq)
                seq += 1
            if out:
                self._last, self._seq = now, seq - 1
            return out

    def next_str(self) -> str:
        return str(self.next())


def timestamp_ms(job_id: int) -> int:
    return (job_id >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
