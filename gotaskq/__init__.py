"""gotaskq: a Redis-backed, multi-queue background job service and library."""

from .app import App
from .backends.base import Backend, QueueInfo
from .config import Settings
from .errors import (
    BackendUnavailable,
    GotaskqError,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    QueueFull,
    QueueNotFound,
    StaleLease,
)
from .job import Job, NewJob
from .states import JobStatus

__all__ = [
    "App",
    "Backend",
    "BackendUnavailable",
    "GotaskqError",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "Job",
    "JobNotFound",
    "JobStatus",
    "NewJob",
    "QueueFull",
    "QueueInfo",
    "QueueNotFound",
    "Settings",
    "StaleLease",
]
