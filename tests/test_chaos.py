"""The chaos harness (scripts/chaos.py): a small run under faults, and its checker on made-up histories."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAOS = ROOT / "scripts" / "chaos.py"
# A few hundred jobs, two worker kills, one Redis restart, one SIGSTOP: about 20 s.
SMALL_RUN = [
    "--n", "300", "--workers", "2", "--rate", "50", "--seed", "20240611",
    "--worker-kills", "2", "--redis-restarts", "1", "--stops", "1",
    "--api-kills", "0", "--sigterms", "0", "--term-kills", "0", "--blips", "0",
    "--drain-timeout", "20", "--max-time", "50",
]  # fmt: skip
RUN_TIMEOUT_S = 58


def load_chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gotaskq_chaos", CHAOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def run_harness(args: list[str]) -> tuple[int, dict[str, Any], str]:
    """Run scripts/chaos.py; on a timeout SIGTERM it (it stops its children by pid), then kill it."""
    proc = subprocess.Popen(
        [sys.executable, str(CHAOS), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
        pytest.fail(f"chaos run took over {RUN_TIMEOUT_S}s: {err.decode(errors='replace')[-3000:]}")
    lines = out.decode().strip().splitlines()
    assert lines, f"no JSON line on stdout: {err.decode(errors='replace')[-3000:]}"
    return proc.returncode, json.loads(lines[-1]), err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.timeout(90)
def test_small_chaos_run_loses_nothing() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run the chaos test")
        pytest.skip("redis-server is not installed")
    code, r, err = run_harness(SMALL_RUN)
    why = f"{json.dumps(r)}\n{err[-3000:]}"
    assert "error" not in r, why
    assert r["faults"] == {"worker_kill": 2, "redis_restart": 1, "sigstop": 1}, why
    assert r["acked"] > 300, why  # the fault-free phase adds its jobs
    assert (r["lost"], r["stuck"], r["unexpected"], r["duplicates"]["unexplained"]) == (0, 0, 0, 0), why
    assert r["dlq"]["count"] == r["dlq"]["poison_sent"] + r["dlq"]["poison_recovered"], why
    assert r["invariant_violations"] == 0 and r["crashes"] == 0, why
    assert r["violations"] == [] and r["ok"] is True and code == 0, why


# External workers over HTTP: 200 jobs, 2 chaos_external_worker.py processes, a kill -9, a SIGSTOP
# past the (3 s) lease: about 20 s.
EXTERNAL_RUN = [
    "--n", "200", "--external", "2", "--seed", "20261201",
    "--worker-kills", "1", "--stops", "1", "--redis-restarts", "0", "--external-lease", "3",
    "--drain-timeout", "20", "--max-time", "50",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.timeout(90)
def test_small_external_chaos_run_loses_nothing() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run the chaos test")
        pytest.skip("redis-server is not installed")
    code, r, err = run_harness(EXTERNAL_RUN)
    why = f"{json.dumps(r)}\n{err[-3000:]}"
    assert "error" not in r, why
    assert r["external"] == 2 and r["faults"] == {"worker_kill": 1, "sigstop": 1}, why
    assert r["acked"] > 200, why
    assert (r["lost"], r["stuck"], r["unexpected"], r["duplicates"]["unexplained"]) == (0, 0, 0, 0), why
    assert r["stale_refused"]["sigstop_missing"] == 0, why
    assert r["late_writes_refused"]["total"] >= r["late_writes_refused"]["stopped_workers"], why
    assert r["dlq"]["count"] == r["dlq"]["poison_sent"] + r["dlq"]["poison_recovered"], why
    assert r["invariant_violations"] == 0 and r["crashes"] == 0, why
    assert r["violations"] == [] and r["ok"] is True and code == 0, why


def test_external_mode_arguments() -> None:
    chaos = load_chaos()
    cfg = chaos.parse_args(["--external", "3", "--seed", "1"])
    assert (cfg.external, cfg.workers) == (3, 3)
    assert (cfg.api_kills, cfg.sigterms, cfg.term_kills, cfg.blips) == (0, 0, 0, 0)
    assert cfg.worker_kills == chaos.Config().worker_kills and cfg.stops == chaos.Config().stops
    for bad in (["--external", "2", "--sigterms", "1"], ["--external", "2", "--cluster"], ["--external", "-1"]):
        with pytest.raises(SystemExit):
            chaos.parse_args(bad)


# -- the checker itself, on histories written by hand ------------------------------------------------
T0 = 1_000_000.0


def write_execs(directory: Path, pid: int, rows: list[tuple[str, str, int, float, float | None, str | None]]) -> None:
    """rows: (job id, key, attempt, start, end or None, outcome or None)."""
    with (directory / f"exec-{pid}.jsonl").open("a") as f:
        for n, (jid, key, att, t0, t1, outcome) in enumerate(rows):
            x = f"{pid}-{jid}-{n}"
            kind = "poison" if key.startswith("p") else "fast"
            start = {"ev": "start", "x": x, "id": jid, "key": key, "att": att, "pid": pid, "kind": kind, "t": t0}
            f.write(json.dumps(start) + "\n")
            if t1 is not None:
                end = {"ev": "end", "x": x, "id": jid, "att": att, "pid": pid, "t": t1, "outcome": outcome}
                f.write(json.dumps(end) + "\n")


def checked(tmp_path: Path, faults: list[tuple[str, float, float, int | None]]) -> dict[str, Any]:
    chaos = load_chaos()
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = chaos.Config(n=5, faultfree=0)
    cluster = chaos.Cluster(cfg, tmp_path)
    run = chaos.Run(cfg, cluster, chaos.ExecTracker(cluster.exec_dir), random.Random(0))
    run.faults = [chaos.Fault(kind, t0, t1, pid) for kind, t0, t1, pid in faults]
    subs = chaos.make_jobs("cx", 5, random.Random(0))
    for n, s in enumerate(subs):
        s.key, s.kind, s.outcome, s.id = f"k{n}", "fast", "acked", str(n + 1)
    subs[4].key, subs[4].kind, subs[4].outcome, subs[4].id = "p4", "poison", "acked", "5"
    subs[2].outcome, subs[2].id = "ambiguous", None  # job 3 ran although never acked: recovered
    phase = chaos.Phase("chaos", subs, T0, T0 + 5, T0 + 9)
    write_execs(cluster.exec_dir, 100, [
        ("1", "k0", 1, T0 + 1, T0 + 1.1, "ok"),                     # fine
        ("3", "k2", 1, T0 + 1, T0 + 1.1, "ok"),                     # recovered (ambiguous submission)
        ("4", "k3", 1, T0 + 1, T0 + 1.1, "ok"),                     # runs twice:
        ("4", "k3", 2, T0 + 3, T0 + 3.1, "ok"),                     # a duplicate
        ("5", "p4", 1, T0 + 1, T0 + 1.1, "fail"),
        ("5", "p4", 2, T0 + 1.2, T0 + 1.3, "fail"),
        ("5", "p4", 3, T0 + 1.4, T0 + 1.5, "fail"),
        ("77", "nobody", 1, T0 + 2, T0 + 2.1, "ok"),                # never submitted: unexpected
    ])  # fmt: skip
    # job 2 never ran: lost
    status = {"1": "DONE", "2": "PENDING", "3": "DONE", "4": "DONE", "5": "DEAD", "77": "DONE"}
    counts = {"chaos-a": {"ready": 1, "delayed": 0, "running": 0, "dead": 1}}
    scan = {"problems": [], "status": status, "stuck": [], "counts": counts}
    result: dict[str, Any] = chaos.analyse(run, [phase], scan)
    return result


def test_checker_flags_lost_unexpected_and_unexplained_duplicates(tmp_path: Path) -> None:
    r = checked(tmp_path, faults=[])
    assert (r["acked"], r["ambiguous"], r["lost"], r["unexpected"], r["recovered"]) == (4, 1, 1, 1, 1)
    assert r["duplicates"] == {"total": 1, "explained": 0, "unexplained": 1}
    assert r["dlq"] == {"count": 1, "poison_sent": 1, "poison_recovered": 0}
    assert {"lost", "unexpected", "unexplained_duplicates", "undrained"} <= set(r["violations"])


def test_checker_explains_a_duplicate_by_a_fault_on_its_worker_only(tmp_path: Path) -> None:
    on_worker = checked(tmp_path / "a", faults=[("worker_kill", T0 + 1.5, T0 + 1.5, 100)])
    assert on_worker["duplicates"] == {"total": 1, "explained": 1, "unexplained": 0}
    elsewhere = checked(tmp_path / "b", faults=[("worker_kill", T0 + 1.5, T0 + 1.5, 999)])
    assert elsewhere["duplicates"]["unexplained"] == 1
    api = checked(tmp_path / "c", faults=[("api_kill", T0 + 1.0, T0 + 2.0, None)])
    assert api["duplicates"]["unexplained"] == 1  # the API runs no job: it explains nothing


def test_failover_report_separates_the_killed_primarys_queues(tmp_path: Path) -> None:
    """--cluster: per kill, the start gap and the 503 window of each queue, killed vs surviving."""
    chaos = load_chaos()
    assert chaos.start_gap([0.0, 1.0, 2.0, 6.0, 7.0], 2.5, 3.0) == 4.0
    assert chaos.start_gap([0.0, 1.0], 2.0, 3.0) is None  # nothing started after the kill
    cfg = chaos.Config(n=4, faultfree=0, topology="cluster", primary_kills=1, min_replicas_ack=1)
    cluster = chaos.Cluster(cfg, tmp_path)
    cluster.queues = ("q-a", "q-b")
    run = chaos.Run(cfg, cluster, chaos.ExecTracker(cluster.exec_dir), random.Random(0))
    run.kills = [{"killed": 7001, "new_primary": 7004, "queues_on_killed": ["q-a"], "t0": T0 + 10,
                  "t_promoted": T0 + 14, "t_rejoined": T0 + 15}]  # fmt: skip
    with (cluster.exec_dir / "exec-1.jsonl").open("w") as f:
        starts = [("q-a", 9.5), ("q-a", 14.5), ("q-b", 9.8), ("q-b", 11.0), ("q-b", 12.5), ("q-b", 15.2)]
        for n, (q, t) in enumerate(starts):
            f.write(json.dumps({"ev": "start", "x": f"x{n}", "id": str(n), "att": 1, "pid": 1, "kind": "fast",
                                "key": f"k{n}", "q": q, "t": T0 + t}) + "\n")  # fmt: skip
    run.tracker.poll()
    subs = chaos.make_jobs("cx", 2, random.Random(0), cluster.queues)
    subs[0].queue, subs[0].errs = "q-a", [(T0 + 10.5, "503"), (T0 + 13.5, "503")]
    subs[1].queue, subs[1].errs = "q-b", [(T0 + 9.0, "connect")]  # before the kill
    report = chaos.failover_report(run, [chaos.Phase("chaos", subs, T0, T0 + 20, T0 + 25)])
    (kill,) = report["kills"]
    assert report["errors_before_first_kill"] == 1
    assert kill["start_gap_s"] == {"killed_queues": 5.0, "surviving_queues": 2.7}
    assert kill["err_window_s"] == {"all": 3.0, "killed_queues": 3.0, "surviving_queues": 0.0}
    assert (kill["promote_s"], kill["rejoin_s"], kill["errors"]) == (4.0, 1.0, {"503": 2})
