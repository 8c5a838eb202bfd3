"""The CLI without a server: its argument tree, output styles, durations, batching and the
errors it prints (an unreachable URL, a refused token)."""

from __future__ import annotations

import argparse
import io
import json
import time
from typing import Any

import httpx
import pytest

from gotaskq import cli
from gotaskq.cli_enqueue import Line, _chunks
from gotaskq.cli_http import CliError, Remote
from gotaskq.cli_ops import duration_arg, limit_arg
from gotaskq.cli_output import Output, relative, wants_color, wants_json
from gotaskq.config import Settings

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _walk(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _walk(child, f"{path} {name}")
    return found


def test_every_option_and_subcommand_has_help() -> None:
    missing = []
    parsers = _walk(cli.build_parser(), "gotaskq")
    assert len(parsers) > 25
    for path, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{path} {name}" for name in action.choices if name not in helped]
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "gotaskq 0.1.0"


@pytest.mark.parametrize(
    ("ago", "text"),
    [
        (0.2, "just now"),
        (5, "5 s ago"),
        (190, "3 min ago"),
        (7300, "2 h ago"),
        (-42, "in 42 s"),
        (-86400 * 3, "in 3 d"),
    ],
)
def test_relative_times(ago: float, text: str) -> None:
    assert relative(_iso(NOW - ago), NOW) == text
    assert relative(None, NOW) == "-"


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_when_piped_tables_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOTASKQ_OUTPUT", raising=False)
    assert wants_json(None, io.StringIO()) is True
    assert wants_json(None, _Tty()) is False
    assert wants_json("json", _Tty()) is True and wants_json("human", io.StringIO()) is False
    monkeypatch.setenv("GOTASKQ_OUTPUT", "human")
    assert wants_json(None, io.StringIO()) is False


def test_colours_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_color(_Tty()) and not wants_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color(_Tty())


def test_tables_align_their_columns_whatever_the_colours() -> None:
    for color in (False, True):
        buf = io.StringIO()
        out = Output(json=False, color=color, out=buf, now=NOW)
        out.table(["ID", "STATUS", "N"], [["1", "DONE", "7"], ["12345", "DEAD", "1234"]], right=(2,))
        plain = [_strip(line) for line in buf.getvalue().splitlines()]
        assert plain == ["ID     STATUS     N", "1      DONE       7", "12345  DEAD    1234"]
        assert ("\x1b[" in buf.getvalue()) is color


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_json_output_is_the_body_as_it_is() -> None:
    buf = io.StringIO()
    Output(json=True, out=buf).emit({"queues": []}, lambda o, b: o.print("a table"))
    assert json.loads(buf.getvalue()) == {"queues": []}


def test_durations_are_the_environments() -> None:
    assert duration_arg("5m") == 300.0 and duration_arg("250ms") == 0.25 and duration_arg("30") == 30.0
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration_arg("5 minutes")
    assert limit_arg("10/60") == {"max": 10, "per": 60.0}
    assert limit_arg("100/1m") == {"max": 100, "per": 60.0}
    assert limit_arg("none") is None
    args = cli.build_parser().parse_args(["enqueue", "t", "--delay", "5m", "--timeout", "1h"])
    assert args.delay == 300.0 and args.timeout == 3600.0


def test_batches_hold_at_most_the_size_and_the_body_limit() -> None:
    lines = [Line(i, {"type": "t", "payload": "x" * 100}) for i in range(1, 26)]
    assert [len(c) for c in _chunks(lines, 10, 1 << 20)] == [10, 10, 5]
    small = _chunks(lines, 1000, 1000)
    assert all(len(json.dumps({"jobs": [x.job for x in c]})) <= 1000 for c in small)
    assert sum(len(c) for c in small) == 25


def _remote(handler: Any, **tokens: str | None) -> Remote:
    remote = Remote.from_settings(Settings(api_token=tokens.get("api"), admin_token=tokens.get("admin")), None)
    remote._http = httpx.Client(base_url=remote.url, transport=httpx.MockTransport(handler))
    return remote


def test_a_401_names_the_token_variable_the_cli_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOTASKQ_URL", raising=False)
    seen: list[str | None] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        body = {"error": {"code": "unauthorized", "message": "this route needs the admin bearer token"}}
        return httpx.Response(401, json=body)

    with pytest.raises(CliError) as unset:
        _remote(refuse).request("GET", "/queue", "admin")
    assert "http://127.0.0.1:8000/queue: 401 unauthorized" in str(unset.value)
    assert "ADMIN_TOKEN" in str(unset.value) and "not set" in str(unset.value)
    with pytest.raises(CliError) as wrong:
        _remote(refuse, api="a", admin="b").request("POST", "/jobs", "jobs")
    assert "API_TOKEN" in str(wrong.value) and "refused" in str(wrong.value)
    assert seen == [None, "Bearer a"]


def test_the_admin_token_reads_jobs_when_no_api_token_is_set() -> None:
    seen: list[str | None] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={})

    _remote(ok, admin="adm").request("GET", "/jobs/1", "jobs")
    _remote(ok, admin="adm").request("DELETE", "/jobs/1", "jobs")
    assert seen == ["Bearer adm", None]


def test_an_unreachable_server_is_named_with_where_its_url_came_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    monkeypatch.setenv("GOTASKQ_URL", f"http://127.0.0.1:{port}")
    assert cli.main(["queues"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach http://127.0.0.1:{port} (GOTASKQ_URL): connection refused" in err
    monkeypatch.delenv("GOTASKQ_URL")
    monkeypatch.setenv("PORT", str(port))
    assert cli.main(["health", "--ready"]) == 1
    assert f"not ready: cannot reach http://127.0.0.1:{port} (GOTASKQ_URL unset: HOST and PORT)" in (
        capsys.readouterr().err
    )


class _FakeBatches:
    """POST /jobs/batch as the server answers it: all or nothing; keys seen before are replays
    (created an hour ago); a "conflict" key is refused (409); queue "gone" does not exist."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.next_id = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        jobs = json.loads(request.content)["jobs"]
        bad = {f"jobs[{i}].priority": "must be an integer" for i, j in enumerate(jobs) if j.get("priority") == "x"}
        if bad:
            return httpx.Response(422, json={"error": {"code": "validation_error", "message": "?", "fields": bad}})
        for j in jobs:
            if j.get("queue") == "gone":
                return httpx.Response(404, json={"error": {"code": "queue_not_found", "message": "no gone"}})
            if j.get("idempotency_key") == "conflict":
                return httpx.Response(409, json={"error": {"code": "idempotency_conflict", "message": "other"}})
        now = _iso(time.time())
        out = []
        for j in jobs:
            key = j.get("idempotency_key")
            if key and key in self.keys:
                out.append(self.keys[key])
                continue
            self.next_id += 1
            job = {"id": str(self.next_id), "created_at": now}
            if key:
                self.keys[key] = job
            out.append(job)
        return httpx.Response(201, json={"jobs": out})


def test_a_file_of_jobs_is_sent_around_its_refused_lines(tmp_path: Any) -> None:
    from gotaskq.cli_enqueue import enqueue_file

    server = _FakeBatches()
    server.keys["old"] = {"id": "old-id", "created_at": _iso(time.time() - 3600)}
    lines = [{"type": "t", "idempotency_key": f"k{i}"} for i in range(40)]  # every line keyed
    lines[5] = {"type": "t", "idempotency_key": "old"}
    lines[11] = {"type": "t", "priority": "x"}
    lines[17] = {"type": "t", "idempotency_key": "conflict"}
    lines[23] = {"type": "t", "queue": "gone"}
    lines[29] = {"type": "t", "queue": "gone"}
    lines[31] = {"type": "t", "idempotency_key": "k30"}  # the same key twice in one file
    path = tmp_path / "jobs.ndjson"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    args = argparse.Namespace(file=str(path), batch_size=16, max_body_bytes=1 << 20)
    for name in ("queue", "priority", "delay", "run_at", "max_retries", "timeout"):
        setattr(args, name, None)
    buf = io.StringIO()
    assert enqueue_file(args, _remote(server), Output(json=True, out=buf)) == 1
    summary = json.loads(buf.getvalue())
    assert [(r["line"], r["code"]) for r in summary["refused"]] == [
        (12, "validation_error"),
        (18, "idempotency_conflict"),
        (24, "queue_not_found"),
        (30, "queue_not_found"),
    ]
    assert (summary["created"], summary["existed"]) == (34, 2)
    existed = [j["line"] for j in summary["jobs"] if not j["created"]]
    assert existed == [6, 32]
    assert server.calls < 20  # halving finds the refused lines without a call a line


def test_the_worker_process_runs_on_uvloop_where_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """`gotaskq worker` runs its event loop on uvloop (a dependency on CPython, as uvicorn uses
    it for the API), and on asyncio's own loop where uvloop cannot be imported."""
    import sys

    import uvloop

    from gotaskq import cli_run

    seen: list[type] = []

    async def fake_run_worker(app: Any, settings: Settings) -> None:
        import asyncio

        seen.append(type(asyncio.get_running_loop()))

    monkeypatch.setattr(cli_run, "_run_worker", fake_run_worker)
    cli_run.run_worker(None, Settings())
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails
    cli_run.run_worker(None, Settings())
    assert seen[0] is uvloop.Loop
    assert not issubclass(seen[1], uvloop.Loop)


def test_the_worker_process_freezes_what_start_up_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full collection walked every object start-up made (~47,000: 28-31 ms idle, 45-63 ms
    under load, the whole worker stalled): `gotaskq worker` freezes them once the App started."""
    import asyncio
    import gc

    from gotaskq import cli_run
    from gotaskq.app import App

    frozen: list[int] = []
    started_then: list[bool] = []
    app = App(Settings(num_workers=1))
    real = cli_run.freeze_startup_heap

    def freeze() -> None:
        started_then.append(app._started)  # after the App's start: its clients are frozen too
        real()

    class Worker:
        async def run(self) -> None:
            frozen.append(gc.get_freeze_count())

    monkeypatch.setattr(app, "worker", Worker)
    monkeypatch.setattr(cli_run, "freeze_startup_heap", freeze)
    gc.unfreeze()
    try:
        asyncio.run(cli_run._run_worker(app, Settings(num_workers=1)))
    finally:
        gc.unfreeze()
    assert started_then == [True]
    assert frozen and frozen[0] > 10_000


def test_the_api_process_freezes_what_start_up_built(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import gc

    import uvicorn

    from gotaskq import cli_run
    from gotaskq.api import create_app
    from gotaskq.app import App

    app = App(Settings(num_workers=0))
    started_then: list[bool] = []
    real = cli_run.freeze_startup_heap

    def freeze() -> None:
        started_then.append(app._started)  # the lifespan's start ran first
        real()

    monkeypatch.setattr(cli_run, "freeze_startup_heap", freeze)
    config = uvicorn.Config(create_app(app), host="127.0.0.1", port=0, lifespan="on", log_config=None)
    server = cli_run.Server(config, app)

    async def start_and_stop() -> int:
        server.config.load()  # as uvicorn's Server._serve does before its startup
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup()
        try:
            return gc.get_freeze_count()
        finally:
            await server.shutdown()

    gc.unfreeze()
    try:
        count = asyncio.run(start_and_stop())
    finally:
        gc.unfreeze()
    assert started_then == [True]
    assert count > 10_000
