"""Loads the Lua transition scripts once per client and calls them with their declared keys.

redis-py's ``Script`` calls EVALSHA and, on NOSCRIPT (a restarted or newly promoted Redis has an
empty script cache), loads the script and retries, so callers never see the cache.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

from ... import keys

# KEYS of each script after KEYS[1] (the queue prefix): the per-queue keys it always touches.
# Job hashes, idempotency keys and stats hashes it reaches through ids hang off KEYS[1].
KEY_SUFFIXES: dict[str, tuple[str, ...]] = {
    "enqueue": ("meta", "ready", "delayed"),
    "claim": ("meta", "ready", "delayed", "running"),
    "extend_lease": ("running",),
    "complete": ("running", "completed"),
    "fail": ("running", "delayed", "dead"),
    "release": ("running", "ready"),
    "recover_expired": ("running", "ready", "dead", "completed", "done"),
    "cancel": ("ready", "delayed"),
    "replay": ("dead", "ready"),
    "delete_dead": ("dead",),
    "withdraw": ("ready", "delayed"),
    "purge": ("ready", "delayed"),
    "drop_queue": ("meta", "running"),
    "progress": (),
    "run_now": ("delayed", "ready"),
}
# renew_node and advance_schedule: one key of their own (gtq:node:<n>, gtq:sched:<name>)
NAMES = (*KEY_SUFFIXES, "renew_node", "advance_schedule")


def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``: from the wheel (gotaskq/lua) or the source tree (lua/)."""
    packaged = resources.files("gotaskq").joinpath("lua", f"{name}.lua")
    if packaged.is_file():
        return packaged.read_text()
    return (Path(__file__).resolve().parents[3] / "lua" / f"{name}.lua").read_text()


def script_keys(name: str, queue: str) -> list[str]:
    p = keys.queue_prefix(queue)
    return [p, *(p + s for s in KEY_SUFFIXES[name])]


class Scripts:
    enqueue: AsyncScript
    claim: AsyncScript
    extend_lease: AsyncScript
    complete: AsyncScript
    fail: AsyncScript
    release: AsyncScript
    recover_expired: AsyncScript
    cancel: AsyncScript
    replay: AsyncScript
    delete_dead: AsyncScript
    withdraw: AsyncScript
    purge: AsyncScript
    drop_queue: AsyncScript
    progress: AsyncScript
    run_now: AsyncScript
    renew_node: AsyncScript
    advance_schedule: AsyncScript

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(lua_source(name)))

    async def load(self, client: Any) -> None:
        """Every script into the server's cache in one round trip, at start-up: else the first
        call of each got NOSCRIPT, loaded it and ran again (two more round trips, on a
        connection the pool opened for it, for the first jobs of a fresh process or server)."""
        pipe = client.pipeline(transaction=False)
        for name in NAMES:
            pipe.script_load(getattr(self, name).script)
        await pipe.execute()

    async def run(self, name: str, queue: str, args: list[Any], client: Any) -> Any:
        """Run one queue's transition on ``client`` (or queue it on ``client`` when it is a pipeline)."""
        script: AsyncScript = getattr(self, name)
        return await script(keys=script_keys(name, queue), args=args, client=client)
