#!/bin/sh
# A gotaskq external worker in POSIX shell + curl: claim (long-poll), run a command, then
# complete or fail. Usage:
#   GOTASKQ_URL=http://127.0.0.1:8000 QUEUE=shell [WORKER_TOKEN=...] [MAX_JOBS=n] \
#     examples/worker.sh COMMAND [ARGS...]
# COMMAND gets the job (JSON, as GET /jobs/{id} shows it) on stdin; what it prints (one JSON
# value; nothing = null) is the result; a non-zero exit fails the attempt (retried with backoff).
set -u
url="${GOTASKQ_URL:-http://127.0.0.1:8000}"
queue="${QUEUE:-shell}"
left="${MAX_JOBS:--1}"
post() {
  if [ -n "${WORKER_TOKEN:-}" ]; then
    curl -sS -X POST -H 'content-type: application/json' -H "Authorization: Bearer $WORKER_TOKEN" -d "$2" "$url$1"
  else
    curl -sS -X POST -H 'content-type: application/json' -d "$2" "$url$1"
  fi
}
while [ "$left" != 0 ]; do
  answer=$(post "/queue/$queue/claim" '{"wait": 20}') || { sleep 1; continue; }
  # The job's JSON starts with its id and ends with the lease fields: anchored, a payload
  # holding the same keys cannot fool these two.
  id=$(printf '%s' "$answer" | sed -n 's/^{"jobs":\[{"id":"\([0-9]*\)".*/\1/p')
  [ -z "$id" ] && continue
  token=$(printf '%s' "$answer" | sed -n 's/.*"lease_token":"\([0-9]*\)","lease_expires_at":"[^"]*"}\]}$/\1/p')
  job=$(printf '%s' "$answer" | sed 's/^{"jobs":\[\(.*\)\]}$/\1/')
  if out=$(printf '%s' "$job" | "$@"); then
    post "/jobs/$id/complete" "{\"lease_token\": \"$token\", \"result\": ${out:-null}}" >/dev/null
  else
    post "/jobs/$id/fail" "{\"lease_token\": \"$token\", \"error\": \"CommandFailed: exit status $?\"}" >/dev/null
  fi
  [ "$left" -gt 0 ] && left=$((left - 1))
done
