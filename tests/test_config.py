"""Settings from the environment, env files, and the CLI's handling of bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from gotaskq.config import ConfigError, Settings, load_env_file, parse_duration

ROOT = Path(__file__).resolve().parents[1]
CLI_TIMEOUT_S = 30


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert (s.host, s.port, s.num_workers, s.redis_url, s.use_redis) == ("127.0.0.1", 8000, 10, None, False)
    assert (s.max_retries, s.base_delay, s.max_delay) == (3, 1.0, 5.0)
    assert (s.visibility_timeout, s.job_timeout, s.shutdown_grace) == (30.0, 300.0, 30.0)
    assert (s.complete_job_ttl, s.idempotency_ttl, s.recovery_interval) == (300.0, 86400.0, 1.0)
    assert (s.log_level, s.log_format, s.handlers, s.metrics_port) == ("INFO", "text", (), None)
    assert (s.api_token, s.admin_token, s.auto_create_queues, s.admin_readonly) == (None, None, False, False)


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUM_WORKERS", "3")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("USE_REDIS", raising=False)
    assert Settings.from_env().num_workers == 3


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("250ms", 0.25), ("1h", 3600.0), ("1.5s", 1.5), (" 2m ", 120.0), ("45", 45.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "", "-1s", "1d", "s", "1 000ms", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_units_in_the_environment() -> None:
    s = Settings.from_env(
        {
            "VISIBILITY_TIMEOUT": "250ms",
            "JOB_TIMEOUT": "5m",
            "SHUTDOWN_GRACE": "30s",
            "IDEMPOTENCY_TTL": "1h",
            "BASE_DELAY": "2s",
            "MAX_DELAY": "1m",
        }
    )
    assert (s.visibility_timeout, s.job_timeout, s.shutdown_grace, s.idempotency_ttl) == (0.25, 300.0, 30.0, 3600.0)
    assert (s.base_delay, s.max_delay) == (2.0, 60.0)


def test_bare_numbers_are_milliseconds_for_backoff_and_seconds_elsewhere() -> None:
    s = Settings.from_env(
        {
            "BASE_DELAY": "1000",
            "MAX_DELAY": "5000",
            "VISIBILITY_TIMEOUT": "30",
            "JOB_TIMEOUT": "60",
            "SHUTDOWN_GRACE": "10",
            "COMPLETE_JOB_TTL": "300",
            "RECOVERY_INTERVAL": "2",
        }
    )
    assert (s.base_delay, s.max_delay) == (1.0, 5.0)
    assert (s.visibility_timeout, s.job_timeout, s.shutdown_grace) == (30.0, 60.0, 10.0)
    assert (s.complete_job_ttl, s.recovery_interval) == (300.0, 2.0)
    assert Settings.from_env({"BASE_DELAY": "250"}).base_delay == 0.25


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("NUM_WORKERS", "-1"),
        ("NUM_WORKERS", "four"),
        ("MAX_RETRIES", "1000"),
        ("VISIBILITY_TIMEOUT", "soon"),
        ("VISIBILITY_TIMEOUT", "1ms"),
        ("BASE_DELAY", "fast"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("USE_REDIS", "maybe"),
        ("AUTO_CREATE_QUEUES", "sometimes"),
        ("REDIS_URL", "http://localhost:6379"),
        ("METRICS_PORT", "x"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: value})


def test_max_delay_below_base_delay_is_refused() -> None:
    with pytest.raises(ConfigError, match="MAX_DELAY"):
        Settings.from_env({"BASE_DELAY": "2s", "MAX_DELAY": "1s"})


def test_choices_ignore_case() -> None:
    s = Settings.from_env({"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"})
    assert (s.log_format, s.log_level) == ("json", "DEBUG")


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, None),
        ({"REDIS_URL": "redis://r:6379/1"}, "redis://r:6379/1"),
        ({"USE_REDIS": "true"}, "redis://127.0.0.1:6379/0"),
        ({"USE_REDIS": "yes", "REDIS_URL": "redis://r:6379/1"}, "redis://r:6379/1"),
        ({"USE_REDIS": "false", "REDIS_URL": "redis://r:6379/1"}, None),
        ({"USE_REDIS": "0", "REDIS_URL": "redis://r:6379/1"}, None),
        ({"REDIS_URL": ""}, None),
    ],
)
def test_use_redis_and_redis_url(env: dict[str, str], url: str | None) -> None:
    s = Settings.from_env(env)
    assert s.redis_url == url
    assert s.use_redis is (url is not None)


def test_handlers_are_a_comma_separated_list() -> None:
    s = Settings.from_env({"GOTASKQ_HANDLERS": " myapp.jobs, ,myapp.reports "})
    assert s.handlers == ("myapp.jobs", "myapp.reports")


SECRETS = {
    "API_TOKEN": "api-secret-1",
    "ADMIN_TOKEN": "admin-secret-2",
    "SMTP_PASSWORD": "smtp-secret-3",
    "REDIS_URL": "redis://user:redis-secret-4@db.example:6379/0",
}


def test_masked_hides_every_secret() -> None:
    s = Settings.from_env(SECRETS)
    masked = s.masked()
    text = repr(masked)
    for secret in ("api-secret-1", "admin-secret-2", "smtp-secret-3", "redis-secret-4"):
        assert secret not in text
    assert masked["redis_url"] == "redis://***@db.example:6379/0"
    assert masked["api_token"] == masked["admin_token"] == masked["smtp_password"] == "***"
    assert set(masked) == {f.name for f in fields(Settings)}
    assert masked["port"] == 8000
    assert Settings().masked()["api_token"] is None, "an unset token is shown as unset"


def test_repr_hides_tokens() -> None:
    text = repr(Settings.from_env({k: v for k, v in SECRETS.items() if k != "REDIS_URL"}))
    for secret in ("api-secret-1", "admin-secret-2", "smtp-secret-3"):
        assert secret not in text


def test_repr_hides_the_redis_password() -> None:
    assert "redis-secret-4" not in repr(Settings.from_env(SECRETS))


# -- env files ------------------------------------------------------------------------------
def test_example_env_documents_the_defaults() -> None:
    env = load_env_file(ROOT / "example.env")
    assert env["PORT"] == "8000" and env["BASE_DELAY"] == "1000" and env["VISIBILITY_TIMEOUT"] == "30s"
    assert "REDIS_URL" not in env and "USE_REDIS" not in env, "commented out: in-memory by default"
    assert Settings.from_env(env) == Settings(), "loaded as it is, example.env gives the defaults"


def test_example_env_mentions_every_setting() -> None:
    text = (ROOT / "example.env").read_text()
    for f in fields(Settings):
        var = "GOTASKQ_HANDLERS" if f.name == "handlers" else f.name.upper()
        assert var in text, f"example.env does not document {var}"


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / "a.env"
    path.write_text(
        "# a comment\n"
        "\n"
        "PORT=9000\n"
        "export NUM_WORKERS=4\n"
        'API_TOKEN="quoted value"\n'
        "ADMIN_TOKEN='single quoted'\n"
        "  HOST = 0.0.0.0  \n"
        "EMPTY=\n"
        "URL=redis://h:1/0?a=b\n"
        'HALF="open\n'
        "    # indented comment\n"
    )
    assert load_env_file(path) == {
        "PORT": "9000",
        "NUM_WORKERS": "4",
        "API_TOKEN": "quoted value",
        "ADMIN_TOKEN": "single quoted",
        "HOST": "0.0.0.0",
        "EMPTY": "",
        "URL": "redis://h:1/0?a=b",
        "HALF": '"open',
    }
    s = Settings.from_env(load_env_file(path))
    assert (s.port, s.num_workers, s.api_token, s.host) == (9000, 4, "quoted value", "0.0.0.0")


@pytest.mark.parametrize("line", ["NOT A SETTING", "1ABC=x", "=value", "export", "A-B=1"])
def test_a_bad_env_line_is_refused_with_its_line_number(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.env"
    path.write_text(f"PORT=1\n{line}\n")
    with pytest.raises(ConfigError, match=r"bad\.env:2"):
        load_env_file(path)


# -- the command line -----------------------------------------------------------------------
def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {f.name.upper() for f in fields(Settings)}}
    clean.pop("USE_REDIS", None)
    clean.pop("GOTASKQ_HANDLERS", None)
    return subprocess.run(
        [sys.executable, "-m", "gotaskq", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=ROOT,
        check=False,
    )


def test_cli_help() -> None:
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    for verb in ("serve", "api", "worker", "queues", "dlq", "health"):
        assert verb in out.stdout


def test_cli_refuses_a_bad_setting_naming_it() -> None:
    out = run_cli("serve", PORT="abc")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_refuses_a_bad_env_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("NUM_WORKERS=many\n")
    out = run_cli("--env-file", str(path), "serve")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "NUM_WORKERS" in out.stderr


# -- Redis topologies ----------------------------------------------------------------------
def test_redis_topology_settings() -> None:
    s = Settings.from_env(
        {
            "REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26379",
            "REDIS_SENTINEL_MASTER": "mymaster",
            "REDIS_SENTINEL_PASSWORD": "pw",
            "REDIS_MIN_REPLICAS_ACK": "1",
            "REDIS_REPLICA_ACK_TIMEOUT": "250ms",
            "REDIS_MAX_CONNECTIONS": "8",
        }
    )
    assert s.use_redis and s.redis_url is None
    assert s.redis_sentinels == ("10.0.0.1:26379", "10.0.0.2:26379") and s.redis_sentinel_master == "mymaster"
    assert (s.redis_min_replicas_ack, s.redis_replica_ack_timeout, s.redis_max_connections) == (1, 0.25, 8)
    assert s.masked()["redis_sentinel_password"] == "***"
    assert Settings.from_env({"REDIS_URL": "redis://h:1/0", "REDIS_CLUSTER": "true"}).redis_cluster == "true"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_SENTINELS": "nohost", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h:99999", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_URL": "redis://h/0", "REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER"),
        ({"REDIS_MIN_REPLICAS_ACK": "-1"}, "REDIS_MIN_REPLICAS_ACK"),
        ({"REDIS_MAX_CONNECTIONS": "1"}, "REDIS_MAX_CONNECTIONS"),
    ],
)
def test_bad_redis_topology_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
