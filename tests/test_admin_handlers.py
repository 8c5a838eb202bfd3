"""Job handlers for the admin UI's browser tests (loaded by ``gotaskq serve`` through
GOTASKQ_HANDLERS; no tests here): a job that reports progress and then waits."""

from __future__ import annotations

import asyncio

from gotaskq import App, Job


async def progress(job: Job) -> dict[str, int]:
    """Reports 40 %, then waits ``payload.seconds`` (default 30) so that it is seen running."""
    await job.progress(40, "step 2 of 5")
    seconds = job.payload.get("seconds", 30) if isinstance(job.payload, dict) else 30
    await asyncio.sleep(float(seconds))
    return {"steps": 5}


def register(app: App) -> None:
    app.task("progress")(progress)
