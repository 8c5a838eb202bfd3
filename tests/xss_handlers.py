"""Test-only job types with hostile output, loaded into ``gotaskq serve`` via GOTASKQ_HANDLERS.

Each attack, if the admin UI ever rendered it as HTML, would set ``window.__xss_fired``.
"""

from __future__ import annotations

from gotaskq import App
from gotaskq.job import Job

SENTINEL = "__xss_fired"
SCRIPT_TAG = f"<script>window.{SENTINEL}=1</script>"
IMG_ONERROR = f'"><img src=x onerror="window.{SENTINEL}=2">'
JS_URL = f"javascript:window.{SENTINEL}=3"
SVG_ONLOAD = f"<svg onload=window.{SENTINEL}=4></svg>"
ATTACKS = (SCRIPT_TAG, IMG_ONERROR, JS_URL, SVG_ONLOAD)
ERROR_TEXT = " ".join(ATTACKS)


def hostile_payload() -> dict[str, object]:
    return {"html": SCRIPT_TAG, "attr": IMG_ONERROR, "url": JS_URL, "svg": SVG_ONLOAD, SCRIPT_TAG: [IMG_ONERROR]}


async def evil(job: Job) -> None:
    raise RuntimeError(ERROR_TEXT)


async def evil_ok(job: Job) -> dict[str, object]:
    return {"html": SCRIPT_TAG, "attr": IMG_ONERROR, "link": JS_URL, "svg": SVG_ONLOAD}


def register(app: App) -> None:
    app.registry.register("evil", evil)
    app.registry.register("evil_ok", evil_ok)
