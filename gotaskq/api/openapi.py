"""The OpenAPI 3.1 document of the HTTP API, written as data.

What a job request may contain is not written here: the JobRequest schema is derived from
gotaskq.job.JOB_REQUEST_FIELDS, the table the server validates with, and the query parameters
from the patterns and limits of gotaskq.api.params, so the document and the checks cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from re import Pattern
from typing import Any

from .. import schedules
from ..job import JOB_ID_RE, JOB_REQUEST_FIELDS, QUEUE_NAME_RE, JobField, run_at_horizon
from . import admin_bulk, admin_search, external, queue_input
from .admin import DEFAULT_STATS_MINUTES, LISTABLE, MAX_STATS_MINUTES
from .job_input import MAX_BATCH
from .params import CURSOR_RE, DEFAULT_LIMIT, MAX_LIMIT

Schema = dict[str, Any]

ERROR_TEXT = {
    400: "Malformed JSON (invalid_json)",
    401: "Missing or wrong bearer token (unauthorized)",
    403: "The admin API is read-only (read_only)",
    404: "Not found (not_found, job_not_found, queue_not_found, schedule_not_found)",
    405: "Method not allowed on this path (method_not_allowed); Allow lists the methods",
    409: (
        "Wrong job state, idempotency key reused, or a queue with running jobs "
        "(invalid_state, idempotency_conflict, queue_busy)"
    ),
    413: "Body larger than MAX_BODY_BYTES (payload_too_large)",
    422: "Invalid input; fields names each bad one (validation_error)",
    429: "Queue holds MAX_QUEUE_DEPTH waiting jobs (queue_full); see Retry-After",
    500: "Unexpected server error (internal)",
    503: "The job store cannot be reached (backend_unavailable)",
}
JOB_ERRORS = (401, 404, 500, 503)
ADMIN_READ_ERRORS = (401, 500, 503)
ADMIN_WRITE_ERRORS = (401, 403, 500, 503)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    tag: str,
    ok: dict[int, Schema],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    responses: dict[str, Schema] = {str(code): resp for code, resp in ok.items()}
    for code in sorted(set(errors)):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if parameters:
        op["parameters"] = parameters
    if tag == "jobs":
        op["security"] = [{"apiToken": []}, {}]
    elif tag in ("queues", "dlq"):
        op["security"] = [{"adminToken": []}, {}]
    elif tag == "workers":
        op["security"] = [{"workerToken": []}, {}]
    return op


def _param(
    name: str, where: str, schema: Schema, description: str, required: bool = False, empty_is_default: bool = False
) -> Schema:
    param: Schema = {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }
    if empty_is_default:  # ``?limit=`` is ``limit`` absent: its default (the admin UI omits them)
        param["allowEmptyValue"] = True
        param["description"] += "; empty: the default"
    return param


def _pattern(regex: Pattern[str]) -> str:
    """A Python regex the server applies with fullmatch, as a JSON Schema (ECMA 262) pattern."""
    return f"^{regex.pattern}$"


JOB_ID = _param("id", "path", {"type": "string", "pattern": _pattern(JOB_ID_RE)}, "Job id")
QUEUE_NAME = _param("name", "path", _ref("QueueName"), "Queue name")
SCHEDULE_NAME = _param("name", "path", _ref("QueueName"), "Schedule name (named like a queue)")
QUEUE_QUERY = _param("queue", "query", _ref("QueueName"), "Only this queue; absent: every queue")
QUEUE_REQUIRED = _param("queue", "query", _ref("QueueName"), "The queue", required=True)
LIMIT = _param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT},
    f"Page size; values above {MAX_LIMIT} are capped",
    empty_is_default=True,
)
CURSOR = _param(
    "cursor",
    "query",
    {"type": "string", "pattern": f"^({CURSOR_RE.pattern})?$"},
    "next_cursor of the previous page; absent or empty: the first page",
)

JOB = _json(_ref("Job"), "The job")
QUEUE = _json(_ref("QueueInfo"), "The queue")


def _paths() -> dict[str, Schema]:
    return {
        "/jobs": {
            "post": _op(
                "Submit a job",
                "jobs",
                {
                    201: _json(_ref("Job"), "Created and persisted"),
                    200: {
                        **JOB,
                        "description": "Idempotency key matched: the existing job",
                        "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "const": "true"}}},
                    },
                },
                (*JOB_ERRORS, 400, 409, 413, 422, 429),
                body="JobRequest",
            )
        },
        "/jobs/batch": {
            "post": _op(
                "Submit up to 1000 jobs, validated all or nothing",
                "jobs",
                {201: _json(_ref("JobList"), "Created and persisted")},
                (*JOB_ERRORS, 400, 409, 413, 422, 429),
                body="BatchRequest",
            )
        },
        "/jobs/{id}": {
            "get": _op("Get a job", "jobs", {200: JOB}, JOB_ERRORS, parameters=[JOB_ID]),
            "delete": _op(
                "Cancel a PENDING or SCHEDULED job",
                "jobs",
                {200: JOB},
                (*JOB_ERRORS, 409),
                parameters=[JOB_ID],
            ),
        },
        "/queue": {
            "get": _op("List queues", "queues", {200: _json(_ref("QueueList"), "Every queue")}, ADMIN_READ_ERRORS)
        },
        "/queue/{name}": {
            "get": _op(
                "Get a queue's counts",
                "queues",
                {200: QUEUE},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[QUEUE_NAME],
            ),
            "post": {
                **_op(
                    "Create a queue (with settings, if a body is given; an existing queue takes them)",
                    "queues",
                    {201: {**QUEUE, "description": "Created"}, 200: {**QUEUE, "description": "Existed"}},
                    (*ADMIN_WRITE_ERRORS, 400, 413, 422),
                    parameters=[QUEUE_NAME],
                ),
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("QueueSettings")}},
                },
            },
            "patch": _op(
                "Change a queue's concurrency, rate limit or paused flag",
                "queues",
                {200: QUEUE},
                (*ADMIN_WRITE_ERRORS, 400, 404, 413, 422),
                body="QueueSettings",
                parameters=[QUEUE_NAME],
            ),
            "delete": _op(
                "Delete a queue and every job of it (default comes back empty)",
                "queues",
                {204: {"description": "Deleted"}},
                (*ADMIN_WRITE_ERRORS, 404, 409, 422),
                parameters=[QUEUE_NAME],
            ),
        },
        "/queue/{name}/purge": {
            "post": _op(
                "Remove every PENDING and SCHEDULED job of a queue",
                "queues",
                {200: _json(_count("purged"), "How many were removed")},
                (*ADMIN_WRITE_ERRORS, 404, 422),
                parameters=[QUEUE_NAME],
            )
        },
        "/queue/{name}/pause": {
            "post": _op(
                "Pause a queue",
                "queues",
                {200: QUEUE},
                (*ADMIN_WRITE_ERRORS, 404, 422),
                parameters=[QUEUE_NAME],
            )
        },
        "/queue/{name}/resume": {
            "post": _op(
                "Resume a queue",
                "queues",
                {200: QUEUE},
                (*ADMIN_WRITE_ERRORS, 404, 422),
                parameters=[QUEUE_NAME],
            )
        },
        "/queue/{name}/claim": {
            "post": {
                **_op(
                    "External workers: lease up to max jobs of an external queue (long-polls up to wait s)",
                    "workers",
                    {200: _json(_ref("ClaimedJobs"), "The jobs leased (none when the wait ran out)")},
                    (401, 400, 404, 409, 413, 422, 500, 503),
                    parameters=[QUEUE_NAME],
                ),
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("ClaimRequest")}},
                },
            }
        },
        "/jobs/{id}/heartbeat": {
            "post": _op(
                "External workers: extend the lease of a job",
                "workers",
                {200: _json(_ref("LeaseExtended"), "The new deadline")},
                (401, 400, 404, 409, 413, 422, 500, 503),
                body="HeartbeatRequest",
                parameters=[JOB_ID],
            )
        },
        "/jobs/{id}/complete": {
            "post": _op(
                "External workers: the job succeeded (409 lease_lost when the lease is not yours)",
                "workers",
                {200: JOB},
                (401, 400, 404, 409, 413, 422, 500, 503),
                body="CompleteRequest",
                parameters=[JOB_ID],
            )
        },
        "/jobs/{id}/fail": {
            "post": _op(
                "External workers: the attempt failed: retry after a backoff while attempts remain, else DLQ",
                "workers",
                {200: JOB},
                (401, 400, 404, 409, 413, 422, 500, 503),
                body="FailRequest",
                parameters=[JOB_ID],
            )
        },
        "/schedules": {
            "get": _op(
                "Every schedule, with its next and last run",
                "queues",
                {200: _json(_ref("ScheduleList"), "Every schedule")},
                ADMIN_READ_ERRORS,
            )
        },
        "/schedules/{name}": {
            "get": _op(
                "One schedule",
                "queues",
                {200: _json(_ref("Schedule"), "The schedule")},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[SCHEDULE_NAME],
            ),
            "put": _op(
                "Create or replace a schedule (cron or every; its job as POST /jobs takes it)",
                "queues",
                {
                    201: _json(_ref("Schedule"), "Created"),
                    200: _json(_ref("Schedule"), "Replaced (its run history kept)"),
                },
                (*ADMIN_WRITE_ERRORS, 400, 413, 422),
                body="ScheduleRequest",
                parameters=[SCHEDULE_NAME],
            ),
            "delete": _op(
                "Delete a schedule",
                "queues",
                {204: {"description": "Deleted"}},
                (*ADMIN_WRITE_ERRORS, 404, 422),
                parameters=[SCHEDULE_NAME],
            ),
        },
        "/workers": {
            "get": _op(
                "Live worker processes: queues served, concurrency, busy slots, job types, jobs running now",
                "queues",
                {200: _json(_ref("WorkerList"), "Every live worker process")},
                ADMIN_READ_ERRORS,
            )
        },
        "/dlq": {
            "get": _op(
                "List dead jobs, newest first",
                "dlq",
                {200: _json(_ref("DeadPage"), "A page")},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[QUEUE_QUERY, LIMIT, CURSOR],
            ),
            "delete": _op(
                "Delete every dead job of a queue",
                "dlq",
                {200: _json(_count("deleted"), "How many were deleted")},
                (*ADMIN_WRITE_ERRORS, 404, 422),
                parameters=[QUEUE_REQUIRED],
            ),
        },
        "/dlq/replay": {
            "post": _op(
                "Replay every dead job of a queue",
                "dlq",
                {200: _json(_count("replayed"), "How many were replayed")},
                (*ADMIN_WRITE_ERRORS, 404, 422),
                parameters=[QUEUE_REQUIRED],
            )
        },
        "/dlq/{id}": {
            "get": _op("Get a dead job", "dlq", {200: JOB}, (*ADMIN_READ_ERRORS, 404), parameters=[JOB_ID]),
            "delete": _op(
                "Delete a dead job",
                "dlq",
                {204: {"description": "Deleted"}},
                (*ADMIN_WRITE_ERRORS, 404, 409),
                parameters=[JOB_ID],
            ),
        },
        "/dlq/{id}/replay": {
            "post": _op("Replay a dead job", "dlq", {200: JOB}, (*ADMIN_WRITE_ERRORS, 404, 409), parameters=[JOB_ID])
        },
        "/queue/{name}/jobs": {
            "get": _op(
                "A queue's jobs in one state, newest first (admin UI); with a filter, the matches "
                f"among the next {admin_search.SCAN_BUDGET} jobs or so (next_cursor continues)",
                "queues",
                {200: _json(_ref("FilteredPage"), "A page of jobs")},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[QUEUE_NAME, _state_param("pending"), LIMIT, CURSOR, *admin_search.query_parameters()],
            )
        },
        "/admin/jobs": {
            "get": _op(
                "Search one queue's jobs in one state, or every queue's (admin UI): matches among "
                f"the next {admin_search.SCAN_BUDGET} jobs or so, newest first; next_cursor continues",
                "queues",
                {200: _json(_ref("FilteredPage"), "A page of matches")},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[QUEUE_QUERY, _state_param("dead"), LIMIT, CURSOR, *admin_search.query_parameters()],
            )
        },
        "/admin/bulk": {
            "post": _op(
                f"One action on many jobs, by ids or by a filter (at most {admin_bulk.MAX_BULK} a request)",
                "queues",
                {200: _json(_ref("BulkResult"), "What happened: matched, done, and each job that failed")},
                (*ADMIN_WRITE_ERRORS, 400, 404, 413, 422),
                body="BulkRequest",
            )
        },
        "/jobs/{id}/run-now": {
            "post": _op(
                "Run a SCHEDULED job (delayed, or waiting for a retry) now: PENDING at once",
                "queues",
                {200: JOB},
                (*ADMIN_WRITE_ERRORS, 404, 409),
                parameters=[JOB_ID],
            )
        },
        "/queue/{name}/stats": {
            "get": _op(
                "Per-minute done/failed/dead counts of a queue (admin UI)",
                "queues",
                {200: _json({"type": "object"}, "{queue, minutes: [{minute, done, failed, dead}]}")},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[
                    QUEUE_NAME,
                    _param(
                        "minutes",
                        "query",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_STATS_MINUTES,
                            "default": DEFAULT_STATS_MINUTES,
                        },
                        "How many minutes, up to now",
                        empty_is_default=True,
                    ),
                ],
            )
        },
        "/admin": {"get": _op("Admin UI", "admin", {200: _html()}, ())},
        "/admin/": {"get": _op("Admin UI", "admin", {200: _html()}, ())},
        "/admin/config.json": {
            "get": _op(
                "What the admin UI needs to know: whether a token is required, read-only mode",
                "admin",
                {200: _json({"type": "object"}, "{auth_required, readonly}")},
                (),
            )
        },
        "/admin/static/{file}": {
            "get": _op(
                "Admin UI assets",
                "admin",
                {200: {"description": "A static file"}},
                (404,),
                parameters=[_param("file", "path", {"type": "string"}, "Asset name")],
            )
        },
        "/healthz": {"get": _op("Liveness", "ops", {200: _json(_status("ok"), "Alive")}, ())},
        "/readyz": {
            "get": _op("Readiness: the job store answers", "ops", {200: _json(_status("ready"), "Ready")}, (503,))
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                "ops",
                {
                    200: {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                (),
            )
        },
        "/openapi.json": {"get": _op("This document", "ops", {200: _json({"type": "object"}, "OpenAPI 3.1")}, ())},
    }


def _state_param(default: str) -> Schema:
    return _param(
        "state",
        "query",
        {"type": "string", "enum": list(LISTABLE), "default": default},
        f"Which state (case does not matter); absent: {default}",
        empty_is_default=True,
    )


def _html() -> Schema:
    return {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def external_schemas() -> dict[str, Schema]:
    """The external worker protocol's bodies (gotaskq.api.external checks the same bounds)."""
    token = {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "lease_token from the claim"}
    lease = {"type": ["number", "null"], "minimum": 0.05, "maximum": external.MAX_LEASE_S}

    def body(props: dict[str, Schema], required: list[str]) -> Schema:
        return {"type": "object", "additionalProperties": False, "required": required, "properties": props}

    return {
        "ClaimRequest": body(
            {
                "max": {"type": ["integer", "null"], "minimum": 1, "maximum": external.MAX_CLAIM, "default": 1},
                "lease": {**lease, "description": "Seconds; default VISIBILITY_TIMEOUT"},
                "wait": {"type": ["number", "null"], "minimum": 0, "maximum": external.MAX_WAIT_S, "default": 0},
                "worker": {"type": ["string", "null"], "description": "Free-text id of the worker"},
            },
            [],
        ),
        "ClaimedJobs": {
            "type": "object",
            "required": ["jobs"],
            "properties": {
                "jobs": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            _ref("Job"),
                            {
                                "type": "object",
                                "required": ["lease_token", "lease_expires_at"],
                                "properties": {
                                    "lease_token": {"type": "string"},
                                    "lease_expires_at": {"type": "string", "format": "date-time"},
                                },
                            },
                        ]
                    },
                }
            },
        },
        "HeartbeatRequest": body(
            {"lease_token": token, "lease": {**lease, "description": "Default: the claim's"}}, ["lease_token"]
        ),
        "LeaseExtended": {
            "type": "object",
            "required": ["lease_expires_at"],
            "properties": {"lease_expires_at": {"type": "string", "format": "date-time"}},
        },
        "CompleteRequest": body({"lease_token": token, "result": {"description": "Any JSON"}}, ["lease_token"]),
        "FailRequest": body(
            {
                "lease_token": token,
                "error": {"type": "string", "minLength": 1},
                "traceback": {"type": ["string", "null"]},
                "retry": {"type": "boolean", "default": True, "description": "false: straight to the DLQ"},
            },
            ["lease_token", "error"],
        ),
    }


def _count(name: str) -> Schema:
    return {"type": "object", "required": [name], "properties": {name: {"type": "integer", "minimum": 0}}}


def _status(value: str) -> Schema:
    return {"type": "object", "required": ["status"], "properties": {"status": {"const": value}}}


def _schemas() -> dict[str, Schema]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "QueueName": {"type": "string", "pattern": _pattern(QUEUE_NAME_RE)},
        "JobRequest": job_request_schema(),
        "BatchRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["jobs"],
            "properties": {
                "jobs": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": _ref("JobRequest")}
            },
        },
        "Job": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "queue": {"type": "string"},
                "type": {"type": "string"},
                "payload": {},
                "priority": {"type": "integer"},
                "status": {"enum": ["SCHEDULED", "PENDING", "RUNNING", "DONE", "DEAD", "CANCELLED"]},
                "attempts": {"type": "integer"},
                "max_retries": {"type": "integer"},
                "timeout": {"type": "number"},
                "run_at": nullable_time,
                "idempotency_key": {"type": ["string", "null"]},
                "last_error": {"type": ["string", "null"]},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "attempt": {"type": "integer"},
                            "error": {"type": "string", "description": "Type: message"},
                            "traceback": {"type": ["string", "null"], "description": "Its last 4 KB"},
                            "at": {"type": "string", "format": "date-time"},
                        },
                    },
                },
                "progress": {
                    "type": ["object", "null"],
                    "properties": {
                        "percent": {"type": "number", "minimum": 0, "maximum": 100},
                        "message": {"type": ["string", "null"]},
                        "at": {"type": "string", "format": "date-time"},
                    },
                    "description": "What the handler last reported (job.progress / job.progress_sync)",
                },
                "result": {},
                "created_at": nullable_time,
                "updated_at": nullable_time,
                "started_at": nullable_time,
                "finished_at": nullable_time,
            },
        },
        "JobList": {
            "type": "object",
            "required": ["jobs"],
            "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
        },
        "DeadPage": {
            "type": "object",
            "required": ["jobs", "next_cursor"],
            "properties": {
                "jobs": {"type": "array", "items": _ref("Job")},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "FilteredPage": {
            "type": "object",
            "required": ["jobs", "next_cursor"],
            "properties": {
                "jobs": {"type": "array", "items": _ref("Job")},
                "next_cursor": {"type": ["string", "null"]},
                "scanned": {"type": "integer", "minimum": 0, "description": "Jobs examined (with a filter)"},
            },
        },
        "BulkFilter": admin_bulk.filter_schema(),
        "BulkRequest": admin_bulk.request_schema(),
        "BulkResult": admin_bulk.result_schema(),
        "QueueInfo": {
            "type": "object",
            "required": [
                "name",
                "paused",
                "pending",
                "scheduled",
                "running",
                "dead",
                "concurrency",
                "rate_limit",
                "external",
            ],
            "properties": {
                "name": {"type": "string"},
                "paused": {"type": "boolean"},
                **{k: {"type": "integer"} for k in ("pending", "scheduled", "running", "dead")},
                "concurrency": queue_input.FIELDS["concurrency"][0],
                "rate_limit": queue_input.FIELDS["rate_limit"][0],
                "external": queue_input.FIELDS["external"][0],
            },
        },
        "QueueSettings": queue_input.schema(),
        "ScheduleRequest": schedules.request_schema(),
        **external_schemas(),
        "Schedule": {
            "type": "object",
            "required": [
                "name",
                "cron",
                "every",
                "timezone",
                "job",
                "paused",
                "next_run_at",
                "last_run_at",
                "last_job_id",
            ],
            "properties": {
                "name": {"type": "string"},
                **{k: spec for k, (spec, _) in schedules.FIELDS.items()},
                "next_run_at": nullable_time,
                "last_run_at": nullable_time,
                "last_job_id": {"type": ["string", "null"]},
            },
        },
        "ScheduleList": {
            "type": "object",
            "required": ["schedules"],
            "properties": {"schedules": {"type": "array", "items": _ref("Schedule")}},
        },
        "WorkerList": {
            "type": "object",
            "required": ["workers"],
            "properties": {
                "workers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "host", "pid", "queues", "concurrency", "busy", "types", "jobs"],
                        "properties": {
                            "id": {"type": "string"},
                            "host": {"type": "string"},
                            "pid": {"type": "integer"},
                            "queues": {"type": "array", "items": {"type": "string"}, "description": '["*"]: all'},
                            "concurrency": {"type": "integer"},
                            "busy": {"type": "integer"},
                            "types": {"type": "array", "items": {"type": "string"}},
                            "started_at": {"type": "string", "format": "date-time"},
                            "last_seen_at": {"type": "string", "format": "date-time"},
                            "jobs": {"type": "array", "items": {"type": "string"}},
                            "running": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "queue": {"type": "string"},
                                        "type": {"type": "string"},
                                        "started_at": {"type": ["string", "null"], "format": "date-time"},
                                        "lease_expires_at": {"type": ["string", "null"], "format": "date-time"},
                                    },
                                },
                                "description": "The jobs running now, with their start and lease deadline",
                            },
                        },
                    },
                }
            },
        },
        "QueueList": {
            "type": "object",
            "required": ["queues"],
            "properties": {"queues": {"type": "array", "items": _ref("QueueInfo")}},
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            },
        },
    }


NULL_RULE = "null on an optional field means the field is not given: its default applies"


def job_request_schema() -> Schema:
    """The JobRequest schema, from the table the server validates with (JOB_REQUEST_FIELDS)."""
    return {
        "type": "object",
        "description": f"A job to enqueue. {NULL_RULE[0].upper()}{NULL_RULE[1:]}.",
        "additionalProperties": False,
        "required": [f.name for f in JOB_REQUEST_FIELDS if f.required],
        "properties": {f.name: job_field_schema(f) for f in JOB_REQUEST_FIELDS},
        # run_at with a non-zero delay is refused (a zero or null delay is no delay).
        "not": {
            "required": ["run_at", "delay"],
            "properties": {
                "run_at": {"type": ["string", "number"]},
                "delay": {"type": "number", "exclusiveMinimum": 0},
            },
        },
    }


def job_field_schema(f: JobField) -> Schema:
    description = f.description
    if f.default_setting is not None:
        description += f"; default: the {f.default_setting} setting"
    schema: Schema = {"description": description}
    if f.kind == "any":
        schema["default"] = f.default
        return schema
    if f.kind == "time":
        assert f.maximum is not None
        schema["anyOf"] = [
            {"type": "string", "format": "date-time", "pattern": run_at_text_pattern(run_at_horizon())},
            # The horizon when this document was served: it only moves later.
            {"type": "number", "minimum": f.minimum, "maximum": run_at_horizon()},
            {"type": "null"},
        ]
        schema["x-max-seconds-after-now"] = f.maximum
        return schema
    schema["type"] = f.kind if f.required else [f.kind, "null"]
    if f.pattern is not None:
        schema["pattern"] = _pattern(f.pattern)
    for keyword, value in (
        ("minLength", f.min_length),
        ("maxLength", f.max_length),
        ("minimum", f.minimum),
        ("maximum", f.maximum),
    ):
        if value is not None:
            schema[keyword] = value
    if f.default is not None:
        schema["default"] = f.default
    return schema


def run_at_text_pattern(horizon: float) -> str:
    """The RFC 3339 run_at times this document promises, as a pattern: the server's syntax
    (gotaskq.job.RFC3339_RE; no leap second, offsets under 24 h) with a local date from
    1971-01-01 to two days before ``horizon``, so that whatever the offset the time is
    between 1970 and the horizon. (JSON Schema cannot bound a date-time; the day or two at each
    end that the server also takes are in the field's description.)"""
    last = datetime.fromtimestamp(horizon, UTC).date() - timedelta(days=2)
    years = "|".join(str(y) for y in range(1971, last.year))
    months = "|".join(f"{m:02d}" for m in range(1, last.month))
    days = "|".join(f"{d:02d}" for d in range(1, last.day + 1))
    up_to_last = (
        f"{last.year}-(({months})-[0-9]{{2}}|{last.month:02d}-({days}))"
        if months
        else (f"{last.year}-{last.month:02d}-({days})")
    )
    date = f"(({years})-[0-9]{{2}}-[0-9]{{2}}|{up_to_last})"
    clock = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?"
    offset = "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
    pattern = f"^{date}[Tt ]{clock}{offset}$"
    return pattern


def _error_responses() -> dict[str, Schema]:
    out = {f"E{code}": _json(_ref("Error"), text) for code, text in ERROR_TEXT.items()}
    out["E401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}}
    out["E405"]["headers"] = {"Allow": {"schema": {"type": "string"}}}
    out["E429"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
    return out


def openapi_document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gotaskq",
            "version": "0.1.0",
            "description": "Redis-backed multi-queue job service",
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _error_responses(),
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer", "description": "API_TOKEN, for /jobs"},
                "workerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "WORKER_TOKEN (else API_TOKEN), for the external worker routes",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_TOKEN, for /queue and /dlq",
                },
            },
        },
    }
