#!/usr/bin/env python3
"""An external worker of the chaos harness (``scripts/chaos.py --external N``), over HTTP only.

Runs the ``chaos`` job type of ``chaos_handlers.py`` outside gotaskq: one claimer thread per queue
long-polls (``gotaskq.client.Client.claim`` with ``wait``) for as many jobs as there are free slots
of THREADS runner threads. A runner records the execution in the same fsynced
``$CHAOS_EXEC_DIR/exec-<pid>.jsonl`` lines as the in-process handler (so the harness's checker reads
both alike), then completes or fails it with the claim's lease token. One more thread heartbeats
every job held (from its claim on) every lease/4, so long jobs keep their lease. A write refused
with 409 lease_lost (the lease ran out, the job was recovered and someone else may run it) is
logged as ``stale completion refused`` / ``stale failure refused`` with its ``job_id``, the lines
the harness counts. 5xx and connection errors are retried with the same token until an answer
comes (a Redis restart, an API restart). SIGTERM: stop claiming, finish what runs, exit 0.

    CHAOS_API_URL=http://127.0.0.1:8000 CHAOS_QUEUES=a,b CHAOS_EXEC_DIR=/tmp/x CHAOS_LEASE=2 \\
        CHAOS_THREADS=16 .venv/bin/python scripts/chaos_external_worker.py
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos_handlers import ExecLog

from gotaskq.client import ApiError, Client, LeaseLost

RETRY_FOR_S = 60.0  # a write is retried through outages this long at most
CLAIM_WAIT_S = 2.0
MAX_CLAIM = 10
HEARTBEAT_THREADS = 16


def log(level: str, msg: str, **extra: Any) -> None:
    line = {"time": time.time(), "level": level, "msg": msg, "pid": os.getpid(), **extra}
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self) -> None:
        env = os.environ
        self.url = env["CHAOS_API_URL"]
        self.token = env.get("CHAOS_API_TOKEN") or None
        self.queues = [q for q in env["CHAOS_QUEUES"].split(",") if q]
        self.lease = float(env.get("CHAOS_LEASE", "2"))
        self.threads = int(env.get("CHAOS_THREADS", "8"))
        self.exec_log = ExecLog(env["CHAOS_EXEC_DIR"])
        self.lock = threading.Lock()
        self.free_changed = threading.Condition(self.lock)
        self.free = self.threads
        self.pool: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.inflight: dict[str, str] = {}  # job id -> lease token
        self.stopping = threading.Event()
        self.beats_done = threading.Event()  # set after the last job ended: long jobs keep their lease
        self.name = f"chaos-ext-{os.getpid()}"

    def exec_id(self) -> str:
        with self.lock:
            return self.exec_log.next_exec_id()

    # -- HTTP with retries -------------------------------------------------------------------
    def _retry(
        self,
        what: str,
        fn: Any,
        deadline_s: float = RETRY_FOR_S,
        job_id: str | None = None,
        tries: list[int] | None = None,
    ) -> Any:
        """Call fn until it answers; 5xx and transport errors are retried, other refusals raised."""
        deadline = time.monotonic() + deadline_s
        delay = 0.05
        while True:
            try:
                return fn()
            except LeaseLost:
                raise
            except ApiError as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                err: str = str(exc)
            except httpx.HTTPError as exc:
                err = f"{type(exc).__name__}: {exc}"
            if tries is not None:
                tries[0] += 1
            if what != "claim":  # a claim's retry is routine; a write's is worth a line
                log("WARNING", f"{what} retried: {err}", job_id=job_id)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: no answer in {deadline_s:g}s: {err}")
            time.sleep(delay)
            delay = min(0.5, delay * 2)

    # -- the job ---------------------------------------------------------------------------------
    def run_one(self, client: Client, job: dict[str, Any]) -> None:
        jid, token = str(job["id"]), str(job["lease_token"])
        p = job.get("payload") if isinstance(job.get("payload"), dict) else {}
        kind = str(p.get("kind", "fast"))
        att = int(job["attempts"])
        x = self.exec_id()
        base = {"x": x, "id": jid, "att": att, "pid": self.exec_log.pid}
        try:
            rec = {"ev": "start", **base, "key": p.get("key"), "kind": kind, "q": job.get("queue"), "t": time.time()}
            self.exec_log.write(rec)
            time.sleep(float(p.get("ms", 10)) / 1000)
            error = None
            if kind == "poison":
                error = "ChaosFailure: poison job: always fails"
            elif kind == "flaky" and att <= int(p.get("fail_times", 0)):
                error = f"ChaosFailure: flaky job: attempt {att} fails"
            outcome = "ok" if error is None else "fail"
            self.exec_log.write({"ev": "end", **base, "t": time.time(), "outcome": outcome})
            tries = [0]  # failed tries before the answer: a 409 after a 5xx may refuse our own applied write
            try:
                if error is None:
                    done = lambda: client.complete(jid, token, result={"x": x})  # noqa: E731
                    self._retry("complete", done, job_id=jid, tries=tries)
                else:
                    self._retry("fail", lambda: client.fail(jid, token, error), job_id=jid, tries=tries)
            except LeaseLost:
                what = "completion" if error is None else "failure"
                msg = f"stale {what} refused: the lease expired and the job was recovered"
                log("WARNING", msg, job_id=jid, after_retry=tries[0] > 0)
        finally:
            with self.lock:
                if self.inflight.get(jid) == token:
                    del self.inflight[jid]

    def claimer(self, queue: str) -> None:
        """One long-poll per queue and process (not one per slot: each waiting claim is woken by
        every enqueue), for as many jobs as there are free slots; the jobs go to the pool."""
        with Client(self.url, self.token, timeout=15.0) as client:
            while not self.stopping.is_set():
                with self.free_changed:
                    while self.free == 0 and not self.stopping.is_set():
                        self.free_changed.wait(0.5)
                    want = min(self.free, MAX_CLAIM)
                if self.stopping.is_set():
                    return
                try:
                    jobs = self._retry(
                        "claim",
                        lambda w=want: client.claim(
                            queue, max=w, lease=self.lease, wait=CLAIM_WAIT_S, worker=self.name
                        ),
                    )
                except Exception as exc:  # keep claiming: the harness counts what never finishes
                    log("ERROR", f"claim failed: {exc}")
                    time.sleep(0.2)
                    continue
                with self.free_changed:
                    self.free -= len(jobs)
                    for job in jobs:  # heartbeated from the claim on, also while waiting for a thread
                        self.inflight[str(job["id"])] = str(job["lease_token"])
                for job in jobs:
                    self.pool.put(job)

    def runner(self) -> None:
        with Client(self.url, self.token, timeout=15.0) as client:
            while True:
                job = self.pool.get()
                if job is None:
                    return
                try:
                    self.run_one(client, job)
                except Exception as exc:
                    log("ERROR", f"job {job.get('id')} failed in the worker: {type(exc).__name__}: {exc}")
                finally:
                    with self.free_changed:
                        self.free += 1
                        self.free_changed.notify_all()

    def heartbeats(self) -> None:
        """Heartbeat each job held every lease/4 after its claim or its last heartbeat, HEARTBEAT_THREADS
        at a time; one slow answer holds up no other job's heartbeat."""
        local = threading.local()
        clients: list[Client] = []

        def beat(item: tuple[str, str]) -> None:
            jid, token = item
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = Client(self.url, self.token, timeout=5.0)
                clients.append(client)
            t0 = time.monotonic()
            try:
                client.heartbeat(jid, token, lease=self.lease)
            except LeaseLost:
                with self.lock:
                    still = self.inflight.get(jid) == token
                if still:  # else it just finished: its token is spent, nothing was lost
                    log("WARNING", "heartbeat: lease lost", job_id=jid)
            except (ApiError, httpx.HTTPError) as exc:
                log("WARNING", f"heartbeat failed: {exc}", job_id=jid)
            took = time.monotonic() - t0
            if took > self.lease / 2:
                log("WARNING", f"slow heartbeat: {took:.2f}s", job_id=jid)

        due: dict[tuple[str, str], float] = {}  # (id, token) -> when its next heartbeat is due
        busy: set[tuple[str, str]] = set()  # a heartbeat of it is on its way

        def send(item: tuple[str, str]) -> None:
            try:
                beat(item)
            finally:
                with self.lock:
                    busy.discard(item)

        with ThreadPoolExecutor(HEARTBEAT_THREADS) as pool:
            while not self.beats_done.wait(0.05):
                now = time.monotonic()
                with self.lock:
                    held = set(self.inflight.items())
                    for item in list(due):
                        if item not in held:
                            del due[item]
                    todo = []
                    for item in held:
                        when = due.setdefault(item, now + self.lease / 4)
                        if when <= now and item not in busy:
                            busy.add(item)
                            due[item] = now + self.lease / 4
                            todo.append(item)
                for item in todo:
                    pool.submit(send, item)
        for client in clients:
            client.close()

    def main(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        claimers = [threading.Thread(target=self.claimer, args=(q,), daemon=True) for q in self.queues]
        workers = [threading.Thread(target=self.runner, daemon=True) for _ in range(self.threads)]
        beat = threading.Thread(target=self.heartbeats, daemon=True)
        for t in [*claimers, *workers, beat]:
            t.start()
        log("INFO", f"external worker up: {self.threads} threads, queues {','.join(self.queues)}")
        while not self.stopping.is_set():
            self.stopping.wait(0.5)
        for t in claimers:
            t.join(timeout=RETRY_FOR_S)
        for _ in workers:
            self.pool.put(None)  # after every claimed job: the pool is FIFO
        for t in workers:
            t.join(timeout=RETRY_FOR_S)
        self.beats_done.set()
        log("INFO", "external worker stopped")
        return 0


if __name__ == "__main__":
    sys.exit(Worker().main())
