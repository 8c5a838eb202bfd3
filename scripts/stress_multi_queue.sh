#!/usr/bin/env bash
# Stress test, in the spirit of the Go GoTaskQ's: create 3 queues and POST N jobs to each
# concurrently with `hey` against `gotaskq serve` on its own redis-server; report requests/s
# per queue and in total, p50/p99 latency, status codes, and the time until every accepted
# job is processed (read from /metrics). Then a baseline in the same run: the same `hey`
# load against a bare Starlette + uvicorn endpoint (scripts/bare_endpoint.py), so gotaskq's
# HTTP cost is a ratio, not an absolute. Ends with ONE JSON line on stdout.
#
#   bash scripts/stress_multi_queue.sh                  # N=50000 per queue, C=50, WORKERS=50
#   N=2000 bash scripts/stress_multi_queue.sh --aof     # small run, Redis with AOF (everysec)
#
# Flags (or env): --n N (per queue), --c C (hey concurrency per queue), --workers WORKERS
# (NUM_WORKERS), --aof (AOF=1), --drain-timeout S (DRAIN_TIMEOUT, default 300), --keep
# (KEEP=1: leave the temp dir with the logs). Everything binds 127.0.0.1 only; every
# process it starts is stopped by pid on exit.
set -euo pipefail

N="${N:-50000}"
C="${C:-50}"
WORKERS="${WORKERS:-50}"
AOF="${AOF:-0}"
DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-300}"
KEEP="${KEEP:-0}"
QUEUES=(q1 q2 q3)

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --n) N="$2"; shift 2 ;;
        --c) C="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --aof) AOF=1; shift ;;
        --drain-timeout) DRAIN_TIMEOUT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
for tool in hey redis-server curl "$PY"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

WORK="$(mktemp -d -t gotaskq-stress.XXXXXX)"
PIDS=()

log() { echo "[stress] $*" >&2; }

stop_pid() {  # SIGTERM, up to 15 s, then SIGKILL: only a pid this script started
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    if [ "$KEEP" = 1 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {  # print the tail of every log, then exit 1
    log "FAILED: $*"
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "----- $f" >&2; tail -n 30 "$f" >&2; }; done
    exit 1
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

wait_for() {  # wait_for WHAT PID CMD...: run CMD until it succeeds, for at most 30 s
    local what="$1" pid="$2"; shift 2
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || fail "$what exited"
        sleep 0.1
    done
    fail "$what did not come up in 30 s"
}

# -- redis-server and gotaskq serve -------------------------------------------------------------
REDIS_PORT="$(free_port)"
mkdir -p "$WORK/redis"
persistence=(--save "" --appendonly no)
[ "$AOF" = 1 ] && persistence=(--save "" --appendonly yes --appendfsync everysec)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" --daemonize no \
    "${persistence[@]}" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for redis-server "${PIDS[-1]}" \
    "$PY" -c "import redis, sys; sys.exit(not redis.Redis(port=$REDIS_PORT, socket_timeout=1).ping())"

APP_PORT="$(free_port)"
APP="http://127.0.0.1:$APP_PORT"
env -u API_TOKEN -u ADMIN_TOKEN -u GOTASKQ_HANDLERS \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" HOST=127.0.0.1 PORT="$APP_PORT" \
    NUM_WORKERS="$WORKERS" LOG_LEVEL=WARNING MAX_QUEUE_DEPTH=0 \
    "$PY" -m gotaskq serve >"$WORK/gotaskq.log" 2>&1 &
GOTASKQ_PID=$!
PIDS+=("$GOTASKQ_PID")
wait_for "gotaskq serve" "$GOTASKQ_PID" curl -sf "$APP/healthz"
for q in "${QUEUES[@]}"; do
    curl -sf -X POST "$APP/queue/$q" >/dev/null || fail "could not create queue $q"
done
log "gotaskq serve on $APP (NUM_WORKERS=$WORKERS), redis on $REDIS_PORT (AOF=$AOF); N=$N per queue, C=$C"

# -- the load: three hey runs at once ---------------------------------------------------------
run_hey() {  # run_hey PHASE BASE_URL: one hey per queue, all at once; sets HEY_WALL (seconds)
    local phase="$1" base="$2" q pid pids=() t0
    t0="$(now)"
    for q in "${QUEUES[@]}"; do
        hey -n "$N" -c "$C" -m POST -T application/json \
            -d "{\"type\":\"noop\",\"queue\":\"$q\",\"payload\":{\"n\":1}}" \
            "$base/jobs" >"$WORK/hey-$phase-$q.txt" 2>&1 &
        pids+=($!)
        PIDS+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || fail "hey exited with $? ($phase)"; done
    HEY_WALL="$(elapsed "$t0" "$(now)")"
}

done_count() {  # sum of gotaskq_jobs_processed_total{status="done"} over every queue
    curl -sf "$APP/metrics" | awk '/^gotaskq_jobs_processed_total\{/ && /status="done"/ { s += $NF } END { printf "%d", s }'
}

accepted_count() {  # 201 responses over the gotaskq hey outputs
    cat "$WORK"/hey-gotaskq-*.txt | awk '$1 == "[201]" { s += $2 } END { printf "%d", s }'
}

LOAD_START="$(now)"
run_hey gotaskq "$APP"
GOTASKQ_WALL="$HEY_WALL"
LOAD_END="$(now)"
TARGET="$(accepted_count)"
log "gotaskq load done in ${GOTASKQ_WALL}s; $TARGET jobs accepted; waiting for them to be processed"

DRAINED=false
processed=0
deadline=$(( $(date +%s) + DRAIN_TIMEOUT ))
while [ "$(date +%s)" -le "$deadline" ]; do
    processed="$(done_count)" || processed=0
    if [ "$processed" -ge "$TARGET" ]; then DRAINED=true; break; fi
    kill -0 "$GOTASKQ_PID" 2>/dev/null || fail "gotaskq serve exited while draining"
    sleep 0.5
done
DRAIN_END="$(now)"
PROCESSED_S="$(elapsed "$LOAD_START" "$DRAIN_END")"
DRAIN_AFTER_LOAD_S="$(elapsed "$LOAD_END" "$DRAIN_END")"
log "processed $processed of $TARGET (drained=$DRAINED) ${PROCESSED_S}s after the load started"
# The baseline gets the machine to itself, as gotaskq had.
stop_pid "$GOTASKQ_PID"
stop_pid "${PIDS[0]}"

# -- baseline: the same load against a bare Starlette endpoint ---------------------------------
BASE_PORT="$(free_port)"
BASE="http://127.0.0.1:$BASE_PORT"
"$PY" "$ROOT/scripts/bare_endpoint.py" --host 127.0.0.1 --port "$BASE_PORT" >"$WORK/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_for bare_endpoint "$BASE_PID" curl -sf -X POST -d '{}' "$BASE/jobs"
run_hey baseline "$BASE"
BASELINE_WALL="$HEY_WALL"
log "baseline load done in ${BASELINE_WALL}s"
stop_pid "$BASE_PID"

# -- one JSON line -------------------------------------------------------------------------------
"$PY" - "$WORK" "$GOTASKQ_WALL" "$BASELINE_WALL" "$TARGET" "$processed" "$DRAINED" "$PROCESSED_S" \
    "$DRAIN_AFTER_LOAD_S" "$N" "$C" "$WORKERS" "$AOF" "${QUEUES[@]}" <<'EOF'
import json
import re
import sys
from pathlib import Path

work, g_wall, b_wall, target, processed, drained, processed_s, drain_s, n, c, workers, aof, *queues = sys.argv[1:]


def parse(path: Path) -> dict:
    text = path.read_text(errors="replace")
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    lat = {int(p): float(s) for p, s in re.findall(r"^\s+(\d+)%+ in ([0-9.]+) secs", text, re.M)}
    codes = {k: int(v) for k, v in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", text, re.M)}
    _, _, error_part = text.partition("Error distribution:")
    errors = sum(int(v) for v in re.findall(r"^\s+\[(\d+)\]", error_part, re.M))
    if rps is None:
        sys.exit(f"cannot parse {path}:\n{text[-2000:]}")
    return {"rps": float(rps.group(1)), "p50_ms": lat.get(50, 0) * 1000, "p99_ms": lat.get(99, 0) * 1000,
            "codes": codes, "errors": errors}


def phase(name: str, wall: str) -> dict:
    runs = {q: parse(Path(work) / f"hey-{name}-{q}.txt") for q in queues}
    codes: dict[str, int] = {}
    for r in runs.values():
        for k, v in r["codes"].items():
            codes[k] = codes.get(k, 0) + v
    total = sum(codes.values()) + sum(r["errors"] for r in runs.values())
    return {
        "rps_per_queue": {q: round(r["rps"], 1) for q, r in runs.items()},
        "total_rps": round(total / float(wall), 1),
        "p50_ms_per_queue": {q: round(r["p50_ms"], 2) for q, r in runs.items()},
        "p99_ms_per_queue": {q: round(r["p99_ms"], 2) for q, r in runs.items()},
        "status_codes": dict(sorted(codes.items())),
        "transport_errors": sum(r["errors"] for r in runs.values()),
        "wall_s": float(wall),
    }


g, b = phase("gotaskq", g_wall), phase("baseline", b_wall)
out = {
    "bench": "stress_multi_queue",
    "n_per_queue": int(n), "concurrency_per_queue": int(c), "num_workers": int(workers),
    "redis_aof": aof == "1",
    "gotaskq": g,
    "accepted": int(target), "processed": int(processed), "drained": drained == "true",
    "processed_s": float(processed_s), "drain_after_load_s": float(drain_s),
    "baseline": b,
    "baseline_total_rps": b["total_rps"],
    "ratio_gotaskq_over_baseline": round(g["total_rps"] / b["total_rps"], 3) if b["total_rps"] else None,
}
print(json.dumps(out, separators=(",", ":")))
EOF
[ "$DRAINED" = true ] || exit 1
