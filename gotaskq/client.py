"""A small typed HTTP client of gotaskq: submit jobs, and be an external worker in Python.

with Client("http://127.0.0.1:8000", token="...") as c:
    c.create_queue("media", external=True)
    c.enqueue("resize", {"path": "a.png"}, queue="media")
    for job in c.claim("media", max=10, wait=20):
        try:
            c.complete(job["id"], job["lease_token"], result=do(job))
        except Exception as exc:
            c.fail(job["id"], job["lease_token"], f"{type(exc).__name__}: {exc}")
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx


class ApiError(Exception):
    """A refusal of the server: its HTTP status, error code and the fields it names."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.fields = fields or {}


class LeaseLost(ApiError):
    """409 lease_lost: the lease ran out and the job is someone else's now; drop it."""


class Client:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201)) -> Any:
        r = self._http.request(method, path, json=body)
        if r.status_code in ok:
            return None if r.status_code == 204 or not r.content else r.json()
        try:
            err = r.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(r.status_code, "http_error", r.text[:200]) from None
        cls = LeaseLost if err.get("code") == "lease_lost" else ApiError
        raise cls(r.status_code, err.get("code", ""), err.get("message", ""), err.get("fields"))

    # -- producers and operators -----------------------------------------------------------
    def enqueue(self, type: str, payload: Any = None, **options: Any) -> dict[str, Any]:
        """POST /jobs; options as its body (queue, priority, delay, run_at, max_retries, ...)."""
        job: dict[str, Any] = self._call("POST", "/jobs", {"type": type, "payload": payload, **options})
        return job

    def enqueue_batch(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST /jobs/batch: 1 to 1000 POST /jobs bodies, all stored or none (an ApiError
        names the refused ones as ``jobs[i].field``); the jobs in the order given."""
        stored: list[dict[str, Any]] = self._call("POST", "/jobs/batch", {"jobs": jobs})["jobs"]
        return stored

    def cancel(self, job_id: str) -> dict[str, Any]:
        """DELETE /jobs/{id}: a PENDING or SCHEDULED job becomes CANCELLED (409 otherwise)."""
        job: dict[str, Any] = self._call("DELETE", f"/jobs/{job_id}")
        return job

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        try:
            job: dict[str, Any] = self._call("GET", f"/jobs/{job_id}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return job

    def create_queue(self, name: str, **settings: Any) -> dict[str, Any]:
        """POST /queue/{name} with settings (concurrency, rate_limit, paused, external)."""
        info: dict[str, Any] = self._call("POST", f"/queue/{name}", settings or None)
        return info

    # -- an external worker ------------------------------------------------------------------
    def claim(
        self, queue: str, *, max: int = 1, lease: float | None = None, wait: float = 0, worker: str | None = None
    ) -> list[dict[str, Any]]:
        """Lease up to ``max`` jobs of an external queue, waiting up to ``wait`` s for one."""
        body = {k: v for k, v in (("max", max), ("lease", lease), ("wait", wait), ("worker", worker)) if v is not None}
        jobs: list[dict[str, Any]] = self._call("POST", f"/queue/{queue}/claim", body)["jobs"]
        return jobs

    def heartbeat(self, job_id: str, lease_token: str, lease: float | None = None) -> str:
        body: dict[str, Any] = {"lease_token": lease_token}
        if lease is not None:
            body["lease"] = lease
        expires: str = self._call("POST", f"/jobs/{job_id}/heartbeat", body)["lease_expires_at"]
        return expires

    def complete(self, job_id: str, lease_token: str, result: Any = None) -> dict[str, Any]:
        job: dict[str, Any] = self._call(
            "POST", f"/jobs/{job_id}/complete", {"lease_token": lease_token, "result": result}
        )
        return job

    def fail(
        self, job_id: str, lease_token: str, error: str, *, traceback: str | None = None, retry: bool = True
    ) -> dict[str, Any]:
        body = {"lease_token": lease_token, "error": error, "traceback": traceback, "retry": retry}
        job: dict[str, Any] = self._call("POST", f"/jobs/{job_id}/fail", body)
        return job
