"""Loads the Lua transition scripts once per client and exposes them as typed attributes.

redis-py's ``Script`` calls EVALSHA and, on NOSCRIPT (a restarted Redis has an empty script
cache), loads the script and retries, so callers never see the cache.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

NAMES = (
    "enqueue",
    "claim",
    "extend_lease",
    "complete",
    "fail",
    "release",
    "recover_expired",
    "cancel",
    "replay",
    "delete_dead",
    "withdraw",
    "renew_node",
)


def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``: from the wheel (gotaskq/lua) or the source tree (lua/)."""
    packaged = resources.files("gotaskq").joinpath("lua", f"{name}.lua")
    if packaged.is_file():
        return packaged.read_text()
    return (Path(__file__).resolve().parents[3] / "lua" / f"{name}.lua").read_text()


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
    renew_node: AsyncScript

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(lua_source(name)))
