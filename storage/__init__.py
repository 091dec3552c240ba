"""Runtime state backends. ``open_store(config)`` picks one by ``storage.runtime.type``.

- ``memory``: this process only (the embedded default).
- ``file``: one SQLite file; ledger, roll-ups, health and cache survive restarts.
- ``redis``: shared by every process using the same Redis (or Redis Cluster): one gateway.
- ``http``: the same shared state through a webdis server.

The networked backends come wrapped in ``ResilientStore``, so the gateway keeps serving (from
per-process memory) when they are unreachable.
"""

from __future__ import annotations

from typing import Callable

from storage.base import CacheEntry, KeyState, Refusal, Reservation, RuntimeStore, StoreUnavailable, WindowLimits
from storage.usage import UsageEvent


def open_store(config, *, on_state: Callable[[bool], None] | None = None, resilient: bool = True) -> RuntimeStore:
    """Build the backend named by ``config.type`` (a ``RuntimeStorage`` from ``app.config``).

    ``on_state(degraded)`` is told when a networked backend becomes unreachable and when it is back.
    ``resilient=False`` returns the bare networked backend (tests of the backend itself).
    """
    if config.type == "memory":
        from storage.memory import MemoryStore

        return MemoryStore()
    if config.type == "file":
        from storage.file import FileStore

        return FileStore(config.path)
    if config.type == "redis":
        from storage.redis import RedisStore
        from storage.redis_transport import RedisPyTransport

        store = RedisStore(RedisPyTransport.from_config(config))
    elif config.type == "http":
        from storage.http import open_http_store

        store = open_http_store(config)
    else:
        raise ValueError(f"unknown storage.runtime.type {config.type!r}")
    if not resilient:
        return store
    from storage.resilient import ResilientStore

    return ResilientStore(store, timeout=config.timeout, on_state=on_state)


__all__ = [
    "CacheEntry",
    "KeyState",
    "Refusal",
    "Reservation",
    "RuntimeStore",
    "StoreUnavailable",
    "UsageEvent",
    "WindowLimits",
    "open_store",
]
