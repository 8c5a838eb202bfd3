"""Settings: one frozen dataclass built from environment variables and validated at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import ConfigError
from .job import QUEUE_NAME_RE

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_duration(text: str, bare_unit: str = "s") -> float:
    """Seconds from '30s', '5m', '250ms', '1h' or a bare number in ``bare_unit``."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 250ms, 30s, 5m, 1h)")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2) or bare_unit]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of gotaskq. Durations are seconds. ``example.env`` documents each one."""

    host: str = "127.0.0.1"
    port: int = 8000
    num_workers: int = 10
    worker_queues: tuple[str, ...] = ()  # only these queues are claimed here; () = every queue
    redis_url: str | None = field(default=None, repr=False)  # may hold a password; see masked()
    redis_max_connections: int = 64
    redis_cluster: str = "auto"  # auto: detected at connect (INFO cluster); true; false
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str | None = None
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_min_replicas_ack: int = 0
    redis_replica_ack_timeout: float = 1.0
    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 5.0
    complete_job_ttl: float = 300.0
    visibility_timeout: float = 30.0
    job_timeout: float = 300.0
    shutdown_grace: float = 30.0
    max_queue_depth: int = 100_000
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl: float = 24 * 3600.0
    priority_aging: float = 60.0
    recovery_interval: float = 1.0
    auto_create_queues: bool = False
    strict_types: bool = False  # POST /jobs refuses a type no live worker process handles
    api_token: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    worker_token: str | None = field(default=None, repr=False)  # external workers; unset: API_TOKEN
    admin_readonly: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    handlers: tuple[str, ...] = ()
    metrics_port: int | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "gotaskq@localhost"

    @property
    def use_redis(self) -> bool:
        return self.redis_url is not None or bool(self.redis_sentinels)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build from ``env`` (default ``os.environ``); raise ConfigError naming the variable."""
        e = os.environ if env is None else env
        r = _Reader(e)
        use_redis = r.boolean("USE_REDIS", None)
        redis_url = e.get("REDIS_URL") or None
        if use_redis is True and redis_url is None:
            redis_url = "redis://127.0.0.1:6379/0"
        if use_redis is False:
            redis_url = None
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
        sentinels = tuple(x.strip() for x in e.get("REDIS_SENTINELS", "").split(",") if x.strip())
        for addr in sentinels:
            host, _, port = addr.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"REDIS_SENTINELS: {addr!r} is not host:port")
        master = e.get("REDIS_SENTINEL_MASTER") or None
        if sentinels and master is None:
            raise ConfigError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the monitored master's name)")
        if use_redis is False:
            sentinels = ()
        s = cls(
            host=e.get("HOST", "127.0.0.1"),
            port=r.integer("PORT", 8000, 0, 65535),
            num_workers=r.integer("NUM_WORKERS", 10, 0, 10_000),
            worker_queues=_queue_list(e.get("WORKER_QUEUES", "")),
            redis_url=redis_url,
            redis_max_connections=r.integer("REDIS_MAX_CONNECTIONS", 64, 2, 100_000),
            redis_cluster=r.choice("REDIS_CLUSTER", "auto", ("auto", "true", "false")),
            redis_sentinels=sentinels,
            redis_sentinel_master=master,
            redis_sentinel_password=e.get("REDIS_SENTINEL_PASSWORD") or None,
            redis_min_replicas_ack=r.integer("REDIS_MIN_REPLICAS_ACK", 0, 0, 100),
            redis_replica_ack_timeout=r.duration("REDIS_REPLICA_ACK_TIMEOUT", 1.0, minimum=0.001),
            max_retries=r.integer("MAX_RETRIES", 3, 0, 100),
            base_delay=r.duration("BASE_DELAY", 1.0, bare_unit="ms"),
            max_delay=r.duration("MAX_DELAY", 5.0, bare_unit="ms"),
            complete_job_ttl=r.duration("COMPLETE_JOB_TTL", 300.0, minimum=0.001),
            visibility_timeout=r.duration("VISIBILITY_TIMEOUT", 30.0, minimum=0.05),
            job_timeout=r.duration("JOB_TIMEOUT", 300.0, minimum=0.001),
            shutdown_grace=r.duration("SHUTDOWN_GRACE", 30.0),
            max_queue_depth=r.integer("MAX_QUEUE_DEPTH", 100_000, 0, 10**12),
            max_body_bytes=r.integer("MAX_BODY_BYTES", 1024 * 1024, 1024, 1 << 31),
            idempotency_ttl=r.duration("IDEMPOTENCY_TTL", 24 * 3600.0, minimum=1.0),
            priority_aging=r.duration("PRIORITY_AGING", 60.0),
            recovery_interval=r.duration("RECOVERY_INTERVAL", 1.0, minimum=0.01),
            auto_create_queues=bool(r.boolean("AUTO_CREATE_QUEUES", False)),
            strict_types=bool(r.boolean("STRICT_TYPES", False)),
            api_token=e.get("API_TOKEN") or None,
            admin_token=e.get("ADMIN_TOKEN") or None,
            worker_token=e.get("WORKER_TOKEN") or None,
            admin_readonly=bool(r.boolean("ADMIN_READONLY", False)),
            log_level=r.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            log_format=r.choice("LOG_FORMAT", "text", ("text", "json")),
            handlers=tuple(m.strip() for m in e.get("GOTASKQ_HANDLERS", "").split(",") if m.strip()),
            metrics_port=r.integer("METRICS_PORT", None, 0, 65535),
            smtp_host=e.get("SMTP_HOST") or None,
            smtp_port=r.integer("SMTP_PORT", 25, 1, 65535),
            smtp_user=e.get("SMTP_USER") or None,
            smtp_password=e.get("SMTP_PASSWORD") or None,
            smtp_from=e.get("SMTP_FROM", "gotaskq@localhost"),
        )
        if s.max_delay < s.base_delay:
            raise ConfigError("MAX_DELAY must be at least BASE_DELAY")
        return s

    def masked(self) -> dict[str, object]:
        """The effective settings with secrets masked, for the start-up log line."""
        out: dict[str, object] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("api_token", "admin_token", "worker_token", "smtp_password", "redis_sentinel_password") and v:
                v = "***"
            if f.name == "redis_url" and isinstance(v, str):
                v = re.sub(r"//[^@/]*@", "//***@", v)
            out[f.name] = v
        return out


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _get(self, name: str) -> str | None:
        v = self.env.get(name)
        return None if v is None or v.strip() == "" else v.strip()

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int:
        v = self._get(name)
        if v is None:
            return default  # type: ignore[return-value]
        try:
            n = int(v)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {v!r}") from None
        if not lo <= n <= hi:
            raise ConfigError(f"{name} must be between {lo} and {hi}, got {n}")
        return n

    def duration(self, name: str, default: float, bare_unit: str = "s", minimum: float = 0.0) -> float:
        v = self._get(name)
        if v is None:
            return default
        try:
            d = parse_duration(v, bare_unit)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        if d < minimum:
            raise ConfigError(f"{name} must be at least {minimum}s, got {v!r}")
        return d

    def boolean(self, name: str, default: bool | None) -> bool | None:
        v = self.env.get(name)
        if v is None:
            return default
        low = v.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, got {v!r}")

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        v = self._get(name)
        if v is None:
            return default
        for o in options:
            if v.lower() == o.lower():
                return o
        raise ConfigError(f"{name} must be one of {', '.join(options)}, got {v!r}")


def _queue_list(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    bad = [n for n in names if not QUEUE_NAME_RE.fullmatch(n)]
    if bad:
        raise ConfigError(f"WORKER_QUEUES: {bad[0]!r} is not a queue name (1-64 of A-Z a-z 0-9 _ . -)")
    return names


def load_env_file(path: str | Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments, blank lines, optional quotes, optional 'export ')."""
    out: dict[str, str] = {}
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path}:{n}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out
