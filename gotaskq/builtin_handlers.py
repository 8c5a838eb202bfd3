"""The job types gotaskq ships with: noop, logger, sleep, fail, webhook and email."""

from __future__ import annotations

import asyncio
import logging
import math
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any, TypeGuard

import httpx
import orjson

from .config import Settings
from .handlers import HandlerRegistry
from .job import Job
from .logs import job_log_extra

MAX_SLEEP_S = 3600.0
WEBHOOK_DEFAULT_TIMEOUT_S = 10.0
WEBHOOK_MAX_TIMEOUT_S = 30.0
SMTP_TIMEOUT_S = 30.0
SMTPS_PORT = 465

jobs_log = logging.getLogger("gotaskq.jobs")


def register_builtins(registry: HandlerRegistry, settings: Settings) -> None:
    """Register every built-in job type; ``settings`` supplies the SMTP server for ``email``."""
    registry.register("noop", noop)
    registry.register("logger", log_payload)
    registry.register("sleep", sleep)
    registry.register("fail", fail)
    registry.register("webhook", webhook)
    registry.register("email", make_email_handler(settings))


async def noop(job: Job) -> None:
    return None


async def log_payload(job: Job) -> None:
    jobs_log.info("logger job payload: %s", orjson.dumps(job.payload).decode(), extra=job_log_extra(job))


async def sleep(job: Job) -> None:
    """Payload ``{"seconds": n}`` with 0 <= n <= 3600."""
    seconds = _obj(job.payload, "sleep").get("seconds")
    if not _is_number(seconds) or not 0 <= seconds <= MAX_SLEEP_S:
        raise ValueError(f"sleep job: payload.seconds must be a number from 0 to 3600, got {seconds!r}")
    await asyncio.sleep(seconds)


async def fail(job: Job) -> None:
    raise RuntimeError("fail job: always fails")


async def webhook(job: Job) -> dict[str, int]:
    """POST JSON to ``payload.url``; any status other than 2xx fails the job.

    Payload: ``url`` (http/https), ``body`` (default: the whole payload), ``headers``
    (str to str), ``timeout`` (seconds, at most 30, default 10).
    """
    p = _obj(job.payload, "webhook")
    url = _http_url(p.get("url"))
    headers = p.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ValueError("webhook job: payload.headers must be an object of string values")
    timeout = p.get("timeout", WEBHOOK_DEFAULT_TIMEOUT_S)
    if not _is_number(timeout) or not 0 < timeout <= WEBHOOK_MAX_TIMEOUT_S:
        raise ValueError(f"webhook job: payload.timeout must be seconds above 0 and at most 30, got {timeout!r}")
    body = p["body"] if "body" in p else p
    # Errors name the host only: webhook paths and queries often carry secrets.
    try:
        # httpx's timeout is per read/write; asyncio.timeout also bounds a slow trickle.
        async with asyncio.timeout(timeout):
            # Redirects are not followed: a 3xx fails rather than re-POSTing the body elsewhere.
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                resp = await client.post(url, json=body, headers=headers)
    except TimeoutError:
        raise RuntimeError(f"webhook job: POST {url.host} timed out after {timeout}s") from None
    except httpx.HTTPError as exc:
        raise RuntimeError(f"webhook job: POST {url.host} failed: {type(exc).__name__}: {exc}") from exc
    if not 200 <= resp.status_code < 300:
        raise RuntimeError(f"webhook job: POST {url.host} returned HTTP {resp.status_code}")
    return {"status": resp.status_code}


def make_email_handler(settings: Settings) -> Callable[[Job], Awaitable[dict[str, list[str]]]]:
    """The ``email`` handler bound to ``settings``' SMTP server.

    Payload: ``to`` (address or list), ``subject``, ``body`` or ``message``, ``from``
    (default SMTP_FROM). Port 465 speaks implicit TLS; elsewhere, when SMTP_USER is set,
    STARTTLS is used if the server offers it, so the password is not sent in clear.
    """

    async def email(job: Job) -> dict[str, list[str]]:
        if settings.smtp_host is None:
            raise RuntimeError("email handler: SMTP_HOST is not configured")
        msg, recipients = _build_message(_obj(job.payload, "email"), settings.smtp_from)
        # smtplib blocks; a thread keeps the event loop (and other jobs) running meanwhile
        refused = await asyncio.to_thread(_send, settings, msg, recipients)
        return {"sent_to": [r for r in recipients if r not in refused]}

    return email


def _build_message(p: dict[str, Any], default_from: str) -> tuple[EmailMessage, list[str]]:
    to = p.get("to")
    recipients = [to] if isinstance(to, str) else to
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and r.strip() for r in recipients)
    ):
        raise ValueError("email job: payload.to must be an address or a non-empty list of addresses")
    subject = p.get("subject")
    if not isinstance(subject, str):
        raise ValueError("email job: payload.subject must be a string")
    text = p.get("body", p.get("message"))
    if not isinstance(text, str):
        raise ValueError("email job: payload.body (or payload.message) must be a string")
    sender = p.get("from", default_from)
    if not isinstance(sender, str) or not sender.strip():
        raise ValueError("email job: payload.from must be a non-empty string")
    for name, value in (("to", ",".join(recipients)), ("subject", subject), ("from", sender)):
        if "\r" in value or "\n" in value:  # header injection
            raise ValueError(f"email job: payload.{name} must not contain line breaks")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(text)
    return msg, recipients


def _send(settings: Settings, msg: EmailMessage, recipients: list[str]) -> dict[str, Any]:
    """Deliver ``msg``; return the recipients the server refused (the rest were accepted)."""
    host, port = settings.smtp_host or "", settings.smtp_port
    smtp: smtplib.SMTP
    if port == SMTPS_PORT:
        smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S)
    with smtp:
        if settings.smtp_user:
            smtp.ehlo()
            if port != SMTPS_PORT and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        refused: dict[str, Any] = smtp.send_message(msg, to_addrs=recipients)
    return refused


def _obj(payload: object, job_type: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError(f"{job_type} job: payload must be a JSON object")
    return payload


def _http_url(value: object) -> httpx.URL:
    if not isinstance(value, str):
        raise ValueError("webhook job: payload.url must be a string")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"webhook job: payload.url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"webhook job: payload.url must be an http:// or https:// URL, got {value!r}")
    return url


def _is_number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
