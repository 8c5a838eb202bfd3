"""The OpenAPI 3.1 document of the HTTP API, written as data."""

from __future__ import annotations

from typing import Any

from ..job import MAX_IDEMPOTENCY_KEY, MAX_PRIORITY, MAX_RETRIES_LIMIT
from .job_input import MAX_BATCH
from .params import DEFAULT_LIMIT, MAX_LIMIT

Schema = dict[str, Any]

ERROR_TEXT = {
    400: "Malformed JSON (invalid_json)",
    401: "Missing or wrong bearer token (unauthorized)",
    403: "The admin API is read-only (read_only)",
    404: "Not found (not_found, job_not_found, queue_not_found)",
    409: "Wrong job state or idempotency key reused (invalid_state, idempotency_conflict)",
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
    return op


def _param(name: str, where: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


JOB_ID = _param("id", "path", {"type": "string", "pattern": "^[0-9]{1,20}$"}, "Job id")
QUEUE_NAME = _param("name", "path", _ref("QueueName"), "Queue name")
QUEUE_QUERY = _param("queue", "query", _ref("QueueName"), "Only this queue")
QUEUE_REQUIRED = _param("queue", "query", _ref("QueueName"), "The queue", required=True)
LIMIT = _param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT},
    f"Page size; values above {MAX_LIMIT} are capped",
)
CURSOR = _param("cursor", "query", {"type": "string"}, "next_cursor of the previous page")

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
            "post": _op(
                "Create a queue",
                "queues",
                {201: {**QUEUE, "description": "Created"}, 200: {**QUEUE, "description": "Existed"}},
                (*ADMIN_WRITE_ERRORS, 422),
                parameters=[QUEUE_NAME],
            ),
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
                "A queue's jobs in one state, newest first (admin UI)",
                "queues",
                {200: _json(_ref("DeadPage"), "A page of jobs")},
                (*ADMIN_READ_ERRORS, 404, 422),
                parameters=[
                    QUEUE_NAME,
                    _param(
                        "state",
                        "query",
                        {"enum": ["pending", "scheduled", "running", "dead"]},
                        "Which state",
                        required=True,
                    ),
                    LIMIT,
                    CURSOR,
                ],
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
                    _param("minutes", "query", {"type": "integer", "minimum": 1, "maximum": 120}, "How many"),
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


def _html() -> Schema:
    return {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _count(name: str) -> Schema:
    return {"type": "object", "required": [name], "properties": {name: {"type": "integer", "minimum": 0}}}


def _status(value: str) -> Schema:
    return {"type": "object", "required": ["status"], "properties": {"status": {"const": value}}}


def _schemas() -> dict[str, Schema]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "QueueName": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-]{1,64}$"},
        "JobRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,128}$"},
                "payload": {"description": "Any JSON value", "default": None},
                "queue": {**_ref("QueueName"), "default": "default"},
                "priority": {"type": "integer", "minimum": 0, "maximum": MAX_PRIORITY, "default": 0},
                "delay": {"type": "number", "minimum": 0, "description": "Seconds from now"},
                "run_at": {
                    "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                    "description": "RFC 3339 or epoch seconds; not with a non-zero delay",
                },
                "max_retries": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_RETRIES_LIMIT,
                    "description": "Default MAX_RETRIES",
                },
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Seconds; default JOB_TIMEOUT",
                },
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
            },
        },
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
                "errors": {"type": "array", "items": {"type": "object"}},
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
        "QueueInfo": {
            "type": "object",
            "required": ["name", "paused", "pending", "scheduled", "running", "dead"],
            "properties": {
                "name": {"type": "string"},
                "paused": {"type": "boolean"},
                **{k: {"type": "integer"} for k in ("pending", "scheduled", "running", "dead")},
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


def _error_responses() -> dict[str, Schema]:
    out = {f"E{code}": _json(_ref("Error"), text) for code, text in ERROR_TEXT.items()}
    out["E401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}}
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
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ADMIN_TOKEN, for /queue and /dlq",
                },
            },
        },
    }
