"""What a newcomer tripped on (issue 14, the broken part): admin token reading jobs, handlers
found from the working directory, a missing env file, a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from api_support import Api

pytest_plugins = ["api_support"]
ROOT = Path(__file__).resolve().parents[1]


async def test_the_admin_token_reads_jobs_when_both_tokens_are_set(make_api: Any) -> None:
    api: Api = await make_api(api_token="api-secret", admin_token="admin-secret")
    job = (await api.client.post("/jobs", json={"type": "t"}, headers={"Authorization": "Bearer api-secret"})).json()
    admin = {"Authorization": "Bearer admin-secret"}
    assert (await api.client.get(f"/jobs/{job['id']}", headers=admin)).status_code == 200
    assert (await api.client.post("/jobs", json={"type": "t"}, headers=admin)).status_code == 401, "writes: API_TOKEN"
    assert (await api.client.delete(f"/jobs/{job['id']}", headers=admin)).status_code == 401
    assert (await api.client.get(f"/jobs/{job['id']}")).status_code == 401


def _gotaskq(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDIS_URL", "GOTASKQ_HANDLERS")}
    return subprocess.run(
        [sys.executable, "-m", "gotaskq", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_missing_handlers_module_is_one_line(tmp_path: Path) -> None:
    r = _gotaskq(["serve", "--port", "0"], tmp_path, {"GOTASKQ_HANDLERS": "nosuchhandlers"})
    assert r.returncode == 2
    assert "nosuchhandlers" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_handlers_are_found_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "myhandlers.py").write_text("def register(app):\n    app.registry.register('mine', lambda job: 1)\n")
    code = (
        "import asyncio; from gotaskq import App, Settings\n"
        "app = App(Settings(handlers=('myhandlers',)), builtins=False)\n"
        "asyncio.run(app.start()); print(sorted(app.registry.types()))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert "mine" in r.stdout


def test_a_missing_env_file_is_one_line(tmp_path: Path) -> None:
    r = _gotaskq(["--env-file", "nope.env", "queues"], tmp_path)
    assert r.returncode == 2 and "nope.env" in r.stderr and "Traceback" not in r.stderr


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    """`gotaskq dlq ls | head -1`: the reader goes away while the listing is printed."""
    code = (
        "import sys, gotaskq.cli as cli\n"
        "def listing(args, remote, out):\n"
        "    out.emit({'jobs': [{'id': str(i), 'error': 'x' * 100} for i in range(20000)]})\n"
        "    return 0\n"
        "cli.cmd_dlq = listing\n"
        "sys.exit(cli.main(['dlq', 'ls', '--json']))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    writer = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    reader = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.close()  # only head holds the pipe now: its exit closes it
    first, _ = reader.communicate(timeout=30)
    stderr = writer.stderr.read().decode()
    writer.stderr.close()
    assert writer.wait(timeout=30) == 141, stderr
    assert first.strip() == b"{"
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr and "Exception ignored" not in stderr
