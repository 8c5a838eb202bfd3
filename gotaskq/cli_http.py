"""The CLI's side of HTTP: which URL and token it uses (and why), and errors that say so."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import httpx

from .config import Settings

# Which token the CLI sends to each area of the API, and the variable it reads it from.
TOKEN_VARS = {"jobs": "API_TOKEN", "admin": "ADMIN_TOKEN"}


class CliError(Exception):
    """A failure the CLI reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = 1, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = body  # the server's JSON error, printed on stdout in JSON mode


@dataclass
class Remote:
    """A gotaskq server as the CLI reaches it: ``url`` came from ``source``."""

    url: str
    source: str
    tokens: dict[str, str | None]
    timeout: float = 10.0
    _http: httpx.Client | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None) -> Remote:
        if url:
            source = "--url"
        elif os.environ.get("GOTASKQ_URL"):
            url, source = os.environ["GOTASKQ_URL"], "GOTASKQ_URL"
        else:
            url, source = f"http://{_dial(settings.host)}:{settings.port}", "GOTASKQ_URL unset: HOST and PORT"
        tokens = {"jobs": settings.api_token, "admin": settings.admin_token}
        return cls(url.rstrip("/"), source, tokens)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def request(self, method: str, path: str, area: str, *, ok: tuple[int, ...] = (), **kw: Any) -> httpx.Response:
        """Send with the token of ``area``; a refusal outside ``ok`` raises CliError."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=self.timeout)
        token = self.tokens.get(area)
        if area == "jobs" and method == "GET" and not token:
            token = self.tokens.get("admin")  # the admin token reads jobs too
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            resp = self._http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.url} ({self.source}): {_reason(exc)}") from None
        if resp.is_success or resp.status_code in ok:
            return resp
        raise self.refusal(resp, area)

    def refusal(self, resp: httpx.Response, area: str) -> CliError:
        body = _json(resp)
        err = body.get("error") if isinstance(body, dict) else None
        code = err.get("code", "") if isinstance(err, dict) else ""
        message = err.get("message", "") if isinstance(err, dict) else resp.text[:200]
        where = f"{resp.request.method} {self.url}{resp.request.url.raw_path.decode()}"
        text = f"{where}: {resp.status_code} {code or resp.reason_phrase}: {message}".rstrip(": ")
        if resp.status_code == 401:
            var = TOKEN_VARS.get(area, "API_TOKEN")
            given = "it is not set here" if not self.tokens.get(area) else "the server refused its value"
            text += f" (the CLI sends {var} as the bearer token of this route: {given})"
        elif resp.status_code == 403:
            var = TOKEN_VARS.get(area, "API_TOKEN")
            text += f" (the CLI sent {var}; while the server has ADMIN_READONLY set, no token may change anything)"
        fields = err.get("fields") if isinstance(err, dict) else None
        if isinstance(fields, dict) and fields:
            text += "".join(f"\n  {name}: {why}" for name, why in sorted(fields.items()))
        return CliError(text, 1, body if isinstance(body, dict) else {"error": {"message": resp.text[:200]}})


def _dial(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused (is gotaskq serve or api running there?)"
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
            return f"unknown host ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return str(exc) or type(exc).__name__
