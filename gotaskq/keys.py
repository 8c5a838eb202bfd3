"""The Redis key schema, written once. Every key of a queue carries the hash tag ``{queue}``
so each Lua script touches a single Cluster slot.

| key                          | type   | written by                                   | TTL |
|------------------------------|--------|----------------------------------------------|-----|
| gtq:queues                   | set    | create_queue (Python, before the meta hash)   | none |
| gtq:active                   | set    | queues that may have work (see lookup.py)     | none |
| gtq:workers                  | hash   | worker id -> its JSON record (expires_ms inside) | none; stale fields pruned |
| gtq:schedules                | set    | schedule names                                | none |
| gtq:sched:<name>             | hash   | def (JSON), next, last (ms), job (last job id): advance_schedule | none |
| gtq:node:<n>                 | string | a process's lease on Snowflake node id n      | 60 s, renewed |
| gtq:ix:<node>:<hour>         | zset   | runs of ids -> queue, one per enqueue call (lookup.py) | none; pruned |
| gtq:ix:hours                 | set    | the "<node>:<hour>" buckets that have an index | none |
| gtq:sweep                    | string | one process a minute looks for queues with expired DONE records | 60 s |
| gtq:wake                     | pubsub | enqueue, replay, fail, release (PUBLISH queue name) | -   |
| gtq:{q}:wake                 | shard pubsub | the same on a Cluster (SPUBLISH)        | -   |
| gtq:{q}:meta                 | hash   | create/configure_queue (paused, conc, rmax, rper ms); drop_queue | none |
| gtq:{q}:rl:<window>          | string | claim: job starts in one rate-limit window    | 2 windows |
| gtq:{q}:j:<id>               | hash   | every transition (fields below)  | DONE (**), CANCELLED (*) |
| gtq:{q}:ready                | zset   | enqueue, claim, recover_expired, release, replay, cancel | none |
| gtq:{q}:delayed              | zset   | enqueue, claim (promotes), fail, cancel       | none |
| gtq:{q}:running              | zset   | claim, extend_lease, complete, fail, release, recover_expired | none |
| gtq:{q}:dead                 | zset   | fail, recover_expired, replay, delete_dead    | none |
| gtq:{q}:completed            | zset   | complete (id -> when its DONE record goes, see (**)) | none |
| gtq:{q}:done                 | zset   | older versions' listing: recover_expired prunes it | none |
| gtq:{q}:idem:<key>           | string | enqueue ("<id> <fingerprint>"), delete_dead, withdraw | IDEMPOTENCY_TTL |
| gtq:{q}:stats:<hour>         | hash   | complete, fail: done:<minute>, failed:<minute>, dead:<minute> | 25 hours |

(*) COMPLETE_JOB_TTL, or what is left of its idempotency key's TTL, if longer: a retry with the key replays the
job's true outcome. delete_dead and withdraw delete a key only while it still names their job.
(**) as (*), but deleted by complete and recover_expired (a worker's recovery pass; once a
minute one worker process finds every queue with records past their time) through the
completed set, many in one DEL: no PEXPIRE call per job. A record kept for an idempotency key
also gets a PEXPIRE (it may outlive every pass). A new set name, not "done": a process of an
older version prunes "done" without deleting records, which would leave them forever; a
rollback to such a version leaves the last COMPLETE_JOB_TTL of DONE records without expiry.

Scores: ready = enqueue ms - priority * PRIORITY_AGING ms (lowest first gives higher priority
first, FIFO within a priority, and a job that waited long enough overtakes newer higher-priority
ones: aging); delayed = run_at ms; running = lease deadline ms (Redis TIME); dead = death ms.

Job hash fields (few and short: each field read or written costs Redis time at every step):
m = "type\npriority max_retries timeout_ms" (the small immutable fields, written once by enqueue
as the client packed them; a tab ends it when the job has no delay, run_at or idempotency key,
so claim need not read run and idem), p (payload JSON: a field of its own, so a small job stays a compact
listpack, whose values may be 64 bytes at most), st, att (absent = 0), run (run_at ms), idem, fp, err, errs
(JSON list), res (JSON), prog (JSON), lms (lease ms of an external claim), ca, ua, sa, fa
(created/updated/started/finished ms; the updated time is the latest of the four: claim and
complete skip ua), lease (fencing token, only ever increases); res is absent for a null result.
Jobs written before ``m`` have type, payload, pri, maxr, tmo fields instead; every script that
reads them takes either form.
"""

from __future__ import annotations

PREFIX = "gtq"
QUEUES = f"{PREFIX}:queues"
ACTIVE = f"{PREFIX}:active"
WORKERS = f"{PREFIX}:workers"
SCHEDULES = f"{PREFIX}:schedules"
INDEX_HOURS = f"{PREFIX}:ix:hours"
SWEEP_LOCK = f"{PREFIX}:sweep"
WAKE_CHANNEL = f"{PREFIX}:wake"
HOUR_MS = 3_600_000


def wake_channel(queue: str, cluster: bool) -> str:
    """Where enqueue notices go: one channel for all queues, or on a Cluster the queue's own
    shard channel ``gtq:{q}:wake`` (SPUBLISH: the notice reaches one shard, not every node)."""
    return f"{queue_prefix(queue)}wake" if cluster else WAKE_CHANNEL


def is_global(key: bytes | str) -> bool:
    """True for the keys that belong to no queue (and carry no hash tag)."""
    k = key.decode() if isinstance(key, bytes) else key
    return k in (QUEUES, ACTIVE, WORKERS, SCHEDULES, SWEEP_LOCK) or k.startswith(
        (f"{PREFIX}:node:", f"{PREFIX}:ix:", f"{PREFIX}:sched:")
    )


def schedule_key(name: str) -> str:
    return f"{PREFIX}:sched:{name}"


def node_key(node: int) -> str:
    return f"{PREFIX}:node:{node}"


def index_key(bucket: str) -> str:
    """``gtq:ix:<node>:<hour>``: the runs of ids one process minted in one hour (lookup.py)."""
    return f"{PREFIX}:ix:{bucket}"


def queue_prefix(queue: str) -> str:
    """``gtq:{q}:`` — every per-queue key starts with it; Lua appends the suffixes above."""
    return f"{PREFIX}:{{{queue}}}:"


def job_key(queue: str, job_id: str) -> str:
    return f"{queue_prefix(queue)}j:{job_id}"
