"""The Redis store, split by concern: connection (clients, pools, errors), node_lease (Snowflake
node ids), codec (job <-> Redis form), lookup (id -> queue index, active queues), wake (pub/sub
wake-ups), scripts (the Lua transitions) and backend (the Backend protocol on top of them)."""

from .backend import RedisBackend

__all__ = ["RedisBackend"]
