"""Repeatable schedules: validation, DST, the store's compare-and-set, exactly one job per tick."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from api_support import Api, error_code, error_fields
from conftest import MakeBackend

from gotaskq import App
from gotaskq.errors import InvalidInput
from gotaskq.job import now_ms
from gotaskq.scheduler import Scheduler
from gotaskq.schedules import Schedule, schedule_from_json

pytest_plugins = ["api_support"]
JOB = {"type": "t", "payload": {"n": 1}}


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def test_cron_follows_the_time_zone_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    s = Schedule("nightly", JOB, cron="30 2 * * *", timezone="Europe/Berlin")
    spring = s.next_after(ms(datetime(2026, 3, 28, 12, 0, tzinfo=berlin)))
    # 02:30 does not exist on 2026-03-29 in Berlin: cron runs it at 03:00 (CEST), once
    assert datetime.fromtimestamp(spring / 1000, berlin) == datetime(2026, 3, 29, 3, 0, tzinfo=berlin)
    after = s.next_after(spring)
    assert datetime.fromtimestamp(after / 1000, berlin) == datetime(2026, 3, 30, 2, 30, tzinfo=berlin)
    utc = Schedule("u", JOB, cron="0 * * * *").next_after(ms(datetime(2026, 1, 1, 10, 15, tzinfo=ZoneInfo("UTC"))))
    assert utc == ms(datetime(2026, 1, 1, 11, 0, tzinfo=ZoneInfo("UTC")))


def test_every_stays_on_the_grid_of_its_last_tick() -> None:
    s = Schedule("e", JOB, every=10).with_state(None, 1_000_000, "1")
    assert s.next_after(1_000_000) == 1_010_000
    assert s.next_after(1_055_000) == 1_060_000, "missed ticks are skipped, not replayed"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"job": JOB}, {"cron", "every"}),
        ({"cron": "* * * * *", "every": 5, "job": JOB}, {"cron", "every"}),
        ({"cron": "61 * * * *", "job": JOB}, {"cron"}),
        ({"every": 0, "job": JOB}, {"every"}),
        ({"every": True, "job": JOB}, {"every"}),
        ({"every": 5, "timezone": "Mars/Olympus", "job": JOB}, {"timezone"}),
        ({"every": 5}, {"job"}),
        ({"every": 5, "job": {"type": "t", "priority": 99}}, {"job.priority"}),
        ({"every": 5, "job": {"type": "t", "run_at": 2_000_000_000}}, {"job.run_at"}),
        ({"every": 5, "job": JOB, "paused": "no"}, {"paused"}),
        ({"every": 5, "job": JOB, "when": 1}, {"when"}),
    ],
)
def test_a_bad_schedule_names_its_fields(body: dict[str, Any], fields: set[str]) -> None:
    with pytest.raises(InvalidInput) as bad:
        schedule_from_json("s", body, 3, 300.0)
    assert fields <= set(bad.value.fields), bad.value.fields


async def test_store_put_replace_list_delete(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    s = schedule_from_json("rep", {"every": 60, "job": JOB}, 3, 300.0)
    assert await backend.put_schedule(s) is True
    got = await backend.get_schedule("rep")
    assert got is not None and got.next_run_ms is not None and got.next_run_ms > now_ms()
    assert await backend.advance_schedule("rep", got.next_run_ms, got.next_run_ms + 60_000, got.next_run_ms, "42")
    assert not await backend.advance_schedule("rep", got.next_run_ms, 1, 1, "43"), "a tick moves on once"
    replaced = schedule_from_json("rep", {"cron": "*/5 * * * *", "job": JOB, "paused": True}, 3, 300.0)
    assert await backend.put_schedule(replaced) is False
    again = await backend.get_schedule("rep")
    assert again is not None and (again.cron, again.paused, again.last_job_id) == ("*/5 * * * *", True, "42")
    assert [x.name for x in await backend.list_schedules()] == ["rep"]
    assert await backend.delete_schedule("rep") is True
    assert await backend.get_schedule("rep") is None and await backend.delete_schedule("rep") is False


async def test_two_processes_make_one_job_per_tick(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    apps = [App(backend.settings, backend, builtins=False) for _ in range(2)]  # type: ignore[attr-defined]
    for app in apps:
        await app.start()
    await apps[0].put_schedule("fast", {"every": 0.2, "job": JOB})
    stop = asyncio.Event()
    runners = [asyncio.create_task(Scheduler(app).run(stop)) for app in apps]
    await asyncio.sleep(1.1)
    stop.set()
    await asyncio.gather(*runners)
    info = await backend.queue_info("default")
    assert 4 <= info.pending <= 6, f"{info.pending} jobs for about 5 ticks of two schedulers"
    jobs = (await backend.list_jobs("default", __import__("gotaskq").JobStatus.PENDING, 100, None)).jobs
    keys = {j.idempotency_key for j in jobs}
    assert len(keys) == len(jobs) and all(k and k.startswith("schedule:fast:") for k in keys)
    runs = sum(app.metrics.schedule_runs.labels("fast")._value.get() for app in apps)
    assert runs == len(jobs)
    last = await backend.get_schedule("fast")
    assert last is not None and last.last_job_id in {j.id for j in jobs}


async def test_missed_ticks_make_one_job_then_the_schedule_resumes(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    app = App(backend.settings, backend, builtins=False)  # type: ignore[attr-defined]
    await app.start()
    await app.put_schedule("late", {"every": 1, "job": JOB})
    s = await backend.get_schedule("late")
    assert s is not None and s.next_run_ms is not None
    now = now_ms()
    assert await backend.advance_schedule("late", s.next_run_ms, now - 30_000, now - 31_000, "")  # as if down 30 s
    await Scheduler(app).run_due()
    assert (await backend.queue_info("default")).pending == 1, "30 missed ticks make one job"
    after = await backend.get_schedule("late")
    assert after is not None and after.next_run_ms is not None and now < after.next_run_ms <= now + 1_500


async def test_schedules_over_http(api: Api) -> None:
    r = await api.client.put("/schedules/report", json={"cron": "0 6 * * 1", "timezone": "Europe/Paris", "job": JOB})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "report" and body["next_run_at"] and body["last_run_at"] is None and body["every"] is None
    r = await api.client.put("/schedules/report", json={"every": 30, "job": JOB})
    assert r.status_code == 200 and r.json()["every"] == 30 and r.json()["cron"] is None
    assert [s["name"] for s in (await api.client.get("/schedules")).json()["schedules"]] == ["report"]
    assert (await api.client.get("/schedules/report")).json()["timezone"] == "UTC"
    bad = await api.client.put("/schedules/report", json={"every": 30})
    assert bad.status_code == 422 and "job" in error_fields(bad)
    assert (await api.client.delete("/schedules/report")).status_code == 204
    gone = await api.client.get("/schedules/report")
    assert gone.status_code == 404 and error_code(gone) == "schedule_not_found"
    assert error_code(await api.client.delete("/schedules/report")) == "schedule_not_found"
