"""Smoke tests of the benchmark scripts with tiny loads: each runs, stops what it started and
prints its one JSON line with the figures it promises. No figure is judged here (a shared CI
machine is too noisy), only that the scripts work.

What a script needs and CI installs (scripts/test: redis-server, hey, node) fails the test when
missing under CI=true, and skips it with the reason elsewhere. BullMQ also needs npm and the npm
registry: without them bench_core must print a ``skipped`` row with the reason instead of
crashing, which is what the test then checks (and says so in its output).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
RUN_TIMEOUT_S = 45

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


def need(binary: str) -> None:
    if shutil.which(binary) is None and not (binary == "redis-server" and Path("/usr/bin/redis-server").exists()):
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is not installed, and CI must run the benchmark smoke tests")
        pytest.skip(f"{binary} is not installed")


def run_script(name: str, *args: str) -> list[dict[str, Any]]:
    """Run scripts/<name>; on a timeout SIGTERM it (it stops its children by pid), then kill it."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
        pytest.fail(f"{name} took more than {RUN_TIMEOUT_S}s:\n{err[-3000:]}")
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{err[-3000:]}"
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"{name} printed no JSON line:\n{out[-2000:]}\n{err[-2000:]}"
    return lines


@pytest.mark.timeout(60)
def test_bench_core_peers_bullmq_reports_rates_and_cpu_per_job() -> None:
    need("redis-server")
    need("node")
    gotaskq, bullmq, ratio = run_script("bench_core.py", "--peers", "bullmq", "--n", "200", "--concurrency", "10")
    assert gotaskq["system"] == "gotaskq" and "error" not in gotaskq, gotaskq
    for key in ("enqueue_per_s", "bulk_enqueue_per_s", "processed_per_s", "worker_cpu_us_per_job"):
        assert gotaskq[key] > 0, (key, gotaskq)
    assert gotaskq["redis_cpu_us_per_job"] >= 0
    assert bullmq["system"] == "bullmq" and "error" not in bullmq, bullmq
    if "skipped" in bullmq:  # no npm or no registry here: a clear reason, never a crash
        assert bullmq["skipped"], bullmq
        assert ratio["gotaskq_processed_vs_bullmq"] is None
        print(f"BullMQ was skipped by bench_core: {bullmq['skipped']}")
        return
    for key in ("enqueue_per_s", "bulk_enqueue_per_s", "processed_per_s", "worker_cpu_us_per_job"):
        assert bullmq[key] > 0, (key, bullmq)
    assert bullmq["redis_cpu_us_per_job"] is not None
    assert ratio["gotaskq_processed_vs_bullmq"] == round(gotaskq["processed_per_s"] / bullmq["processed_per_s"], 2)
    assert "gotaskq_worker_cpu_per_job_vs_bullmq" in ratio and "gotaskq_redis_cpu_per_job_vs_bullmq" in ratio


def test_bench_core_skips_bullmq_with_a_reason_without_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_core
    finally:
        sys.path.remove(str(SCRIPTS))
    real_which = shutil.which
    monkeypatch.setattr(bench_core.shutil, "which", lambda name: None if name == "node" else real_which(name))
    monkeypatch.setattr(bench_core, "redis_pid", lambda url: 1)
    row = bench_core.run_peer("bullmq", "redis://127.0.0.1:1/0", 10, 1, tmp_path)
    assert row == {"system": "bullmq", "skipped": "node is not installed (apt-get install -y nodejs npm)"}
    assert not (tmp_path / "bullmq").exists()


@pytest.mark.timeout(60)
def test_bench_load_latency_reports_latency_percentiles_and_worker_cpu() -> None:
    need("redis-server")
    (line,) = run_script("bench_load_latency.py", "--rate", "300", "--seconds", "1", "--concurrency", "10")
    assert line["bench"] == "load_latency"
    run = line["rates"]["300"]["runs"][0]
    assert run["jobs"] == 300
    lat = run["latency_ms"]
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
    assert run["processed_per_s_overall"] > 0 and run["worker_cpu_us_per_job"] > 0
    assert 0 < run["longest_start_gap_ms"] < 1000 * 1 and 0 < run["first_start_ms"] <= lat["max"]
    assert set(line["rates"]["300"]["summary"]) >= {"latency_p99_ms", "processed_per_s_during_load"}


@pytest.mark.timeout(90)
def test_bench_e2e_runs_every_posted_job_and_reports_cpu_per_job() -> None:
    need("redis-server")
    need("hey")
    (line,) = run_script("bench_e2e.py", "--n", "300", "--c", "10", "--runs", "1", "--warmup", "20")
    assert line["bench"] == "e2e"
    (run,) = line["runs"]
    assert run["jobs_per_s"] > 0 and run["requests_per_s"] > 0
    assert run["redis_cpu_us_per_job"] >= 0 and run["worker_cpu_us_per_job"] >= 0
    # the enqueues, claims and completions of 300 jobs: at least one call a batch, at most 3 a job
    assert 0 < run["script_calls_per_job"] <= 3
    assert set(line["summary"]) >= {"jobs_per_s", "redis_cpu_us_per_job", "worker_cpu_us_per_job"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bare_one_write", [False, True])
def test_bench_http_compares_gotaskq_api_with_the_bare_endpoint(bare_one_write: bool) -> None:
    need("redis-server")
    need("hey")
    flag = ["--bare-one-write"] if bare_one_write else []
    # 2,000 requests: a server's CPU is read in 10 ms ticks from /proc, and 300 took ~12 ms (0 ticks once in CI)
    (line,) = run_script("bench_http.py", "--n", "2000", "--c", "10", "--runs", "1", "--warmup", "20", *flag)
    assert line["bench"] == "http"
    assert line["uvicorn"].endswith("bare's = the same" if bare_one_write else "bare's = uvicorn's own httptools")
    for name in ("gotaskq", "bare"):
        (run,) = line[name]["runs"]
        assert run["status_codes"] == {"201": 2000}
        assert run["rps"] > 0 and run["server_cpu_us_per_request"] > 0
    assert line["ratio_gotaskq_vs_bare_rps"]["of_medians"] > 0
    assert line["gotaskq"]["runs"][0]["redis_cpu_us_per_request"] is not None


def test_bench_worker_and_bench_redis_cost_report_cpu_per_job() -> None:
    need("redis-server")
    # 6,000 jobs: /proc counts CPU in 10 ms ticks, and a 2,000-job drain took ~16 ms of it (bench_http's
    # 300-request run once read 0 ticks in CI)
    (worker,) = run_script("bench_worker.py", "--n", "6000", "--runs", "1", "--concurrency", "20")
    assert worker["bench"] == "worker" and worker["jobs_per_s"]["median"] > 0
    assert worker["worker_cpu_us_per_job"]["median"] > 0 and worker["redis_cpu_us_per_job"]["median"] >= 0
    (cost,) = run_script("bench_redis_cost.py", "--n", "2000", "--runs", "1", "--callers", "10")
    for path in ("bulk", "single"):
        assert cost[f"{path}_processed_cpu_us_per_job"]["median"] >= 0
        assert set(cost["last_run_commands"][f"{path}_claim"]) >= {"evalsha"}
    assert cost["flow"] == {"backlog": 100, "batch": 25} and cost["flow_processed_cpu_us_per_job"]["median"] >= 0
    # every step enqueues, claims and completes: one HSET a job each
    assert set(cost["last_run_commands"]["flow"]) >= {"evalsha", "hset", "zadd"}


def test_bench_worker_instructions_counts_the_drain_under_callgrind() -> None:
    need("redis-server")
    need("valgrind")
    (line,) = run_script("bench_worker_instructions.py", "--n", "200", "--concurrency", "10")
    assert (line["bench"], line["n"], line["concurrency"]) == ("worker_instructions", 200, 10)
    # a no-op job costs the worker tens of thousands of instructions; start-up is not counted
    assert 10_000 < line["instructions_per_job"] < 2_000_000


def test_bench_redis_instructions_counts_each_phase_under_callgrind() -> None:
    need("redis-server")
    need("valgrind")
    (line,) = run_script("bench_redis_instructions.py", "--n", "200")
    per_job = line["instructions_per_job"]
    assert set(per_job) == {"enqueue", "claim", "complete", "flow", "processed"}
    assert all(v > 0 for v in per_job.values())
    assert per_job["processed"] == per_job["enqueue"] + per_job["claim"] + per_job["complete"]
