#!/usr/bin/env bash
# Where the time of `gotaskq serve` goes under POST /jobs load: the profile that guided the
# HTTP work of the speed issue. Starts redis-server and `gotaskq serve` on loopback ports,
# runs the stress load (3 queues, `hey -c 50` each), samples the server with py-spy meanwhile,
# and prints the hottest frames (own time and inclusive) to stderr, then ONE JSON line.
#
#   bash scripts/profile_http.sh                 # N=20000 per queue, WORKERS=50, 8 s of samples
#   WORKERS=0 bash scripts/profile_http.sh       # API only (NUM_WORKERS=0)
#
# Needs py-spy (`.venv/bin/pip install py-spy`; it reads the process with ptrace, as root or
# with kernel.yama.ptrace_scope=0) and hey. Every process it starts is stopped by pid.
set -euo pipefail

N="${N:-20000}"
WORKERS="${WORKERS:-50}"
SECONDS_SAMPLED="${SECONDS_SAMPLED:-8}"
TOP="${TOP:-25}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
SPY="${PY_SPY:-$(dirname "$PY")/py-spy}"
[ -x "$SPY" ] || SPY="$(command -v py-spy || true)"
[ -n "$SPY" ] || { echo "missing: py-spy (.venv/bin/pip install py-spy)" >&2; exit 2; }
for tool in hey redis-server curl "$PY"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

WORK="$(mktemp -d -t gotaskq-profile.XXXXXX)"
PIDS=()
cleanup() {
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[i]}"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() {  # wait_up PID CMD...: up to 30 s
    local pid="$1"; shift
    for _ in $(seq 300); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { echo "process $pid exited" >&2; exit 1; }
        sleep 0.1
    done
    echo "not up after 30 s: $*" >&2; exit 1
}

REDIS_PORT="$(free_port)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK" --save "" --appendonly no \
    --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_up "${PIDS[-1]}" "$PY" -c "import redis; redis.Redis(port=$REDIS_PORT).ping()"
APP_PORT="$(free_port)"
APP="http://127.0.0.1:$APP_PORT"
env -u API_TOKEN -u ADMIN_TOKEN -u GOTASKQ_HANDLERS REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
    HOST=127.0.0.1 PORT="$APP_PORT" NUM_WORKERS="$WORKERS" LOG_LEVEL=WARNING MAX_QUEUE_DEPTH=0 \
    "$PY" -m gotaskq serve >"$WORK/gotaskq.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_up "$SERVER" curl -sf "$APP/healthz"
for q in q1 q2 q3; do curl -sf -X POST "$APP/queue/$q" >/dev/null; done

"$SPY" record -p "$SERVER" -f raw -o "$WORK/profile.txt" -d "$SECONDS_SAMPLED" -r 200 >"$WORK/spy.log" 2>&1 &
SPY_PID=$!
PIDS+=("$SPY_PID")
HEYS=()
for q in q1 q2 q3; do
    hey -n "$N" -c 50 -m POST -T application/json -d "{\"type\":\"noop\",\"queue\":\"$q\",\"payload\":{\"n\":1}}" \
        "$APP/jobs" >"$WORK/hey-$q.txt" 2>&1 &
    HEYS+=($!)
    PIDS+=($!)
done
for pid in "${HEYS[@]}"; do wait "$pid"; done
wait "$SPY_PID" || { cat "$WORK/spy.log" >&2; exit 1; }

"$PY" - "$WORK" "$TOP" "$N" "$WORKERS" <<'EOF'
import json
import re
import sys
from collections import Counter
from pathlib import Path

work, top, n, workers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
own: Counter[str] = Counter()
inclusive: Counter[str] = Counter()
total = 0
for line in (work / "profile.txt").read_text().splitlines():
    stack, _, count = line.rpartition(" ")
    frames = stack.split(";")
    total += int(count)
    own[frames[-1]] += int(count)
    for frame in set(frames):
        inclusive[frame] += int(count)
rps = sum(float(m) for f in work.glob("hey-*.txt") for m in re.findall(r"Requests/sec:\s+([0-9.]+)", f.read_text()))


def table(counter: Counter[str], title: str) -> list[list[object]]:
    rows = [[round(100 * c / total, 1), frame] for frame, c in counter.most_common(top)]
    print(f"--- {title} (% of {total} samples)", file=sys.stderr)
    for pct, frame in rows:
        print(f"{pct:5.1f}%  {frame}", file=sys.stderr)
    return rows


own_rows = table(own, "own time")
incl_rows = table(Counter({f: c for f, c in inclusive.items() if "gotaskq" in f or "starlette" in f}), "inclusive, gotaskq and starlette frames")
print(json.dumps({"bench": "profile_http", "n_per_queue": n, "num_workers": workers, "samples": total,
                  "requests_per_s": round(rps, 1), "own": own_rows, "inclusive": incl_rows}))
EOF
