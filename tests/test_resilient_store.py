"""When Redis (direct, or behind webdis) goes away the store serves from memory without delay,
says it is degraded once, buffers usage events, and returns to Redis by itself when it is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.config import RuntimeStorage
from servers import RedisServer, WebdisServer
from storage import Reservation, StoreUnavailable, UsageEvent, WindowLimits, open_store


@pytest.mark.parametrize("kind", ["redis", "http"])
def test_degrades_to_memory_and_recovers_by_itself(kind, tmp_path):
    redis = RedisServer(tmp_path).start()
    webdis = WebdisServer(tmp_path, redis.port).start() if kind == "http" else None
    config = RuntimeStorage(type=kind, url=(webdis or redis).url, timeout=0.3)
    changes: list[bool] = []
    limits = WindowLimits(requests=2, tokens=None)

    async def scenario():
        store = open_store(config, on_state=changes.append)
        store.probe_interval = 0.2
        try:
            shared = await store.reserve("p#1", tokens=1, limits=limits, now=time.time())
            assert isinstance(shared, Reservation) and not shared.entry_id.startswith("local:")
            assert await store.ping() is True

            redis.stop()
            started = time.monotonic()
            local = [await store.reserve("p#1", tokens=1, limits=limits, now=time.time()) for _ in range(3)]
            assert time.monotonic() - started < 2.0  # one bounded failure, then memory answers at once
            assert store.degraded and changes == [True]
            # Limits now hold per process: 2 local reservations, then a refusal.
            assert [isinstance(r, Reservation) for r in local] == [True, True, False]
            assert all(r.entry_id.startswith("local:") for r in local[:2])
            assert await store.ping() is False
            await store.settle(shared, tokens=1, failed=False, latency=0.1, now=time.time())  # no hang, no error
            await store.settle(local[0], tokens=1, failed=False, latency=0.1, now=time.time())
            await store.append_events([UsageEvent(at=time.time(), request_id="during-outage")])
            with pytest.raises(StoreUnavailable):
                await store.rollup_cursor()  # background work waits for the real store
            with pytest.raises(StoreUnavailable):
                await store.reset_key("p#1")  # the shared cooldown cannot be lifted from here
            await store.recent_push([{"id": "seen-here"}])  # the dashboard's sample: kept in this process
            assert await store.recent_list(5) == [{"id": "seen-here"}]
            assert store.fallbacks == 1 and changes == [True]  # logged and counted once

            redis.start()
            deadline = time.monotonic() + 10
            while store.degraded and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not store.degraded and changes == [True, False]
            events = await store.read_events("", limit=10)
            assert [e.request_id for _, e in events] == ["during-outage"]  # buffered, then replayed
            again = await store.reserve("p#1", tokens=1, limits=limits, now=time.time())
            assert isinstance(again, Reservation) and not again.entry_id.startswith("local:")
            assert await store.recent_list(5) == []  # back on the shared list (the restarted Redis is empty)
        finally:
            await store.close()

    try:
        asyncio.run(scenario())
    finally:
        if webdis:
            webdis.stop()
        redis.stop()


def test_an_unreachable_store_at_start_is_degraded_not_fatal(tmp_path):
    from servers import free_port

    config = RuntimeStorage(type="redis", url=f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)

    async def scenario():
        store = open_store(config)
        try:
            result = await store.reserve("p#1", tokens=1, limits=WindowLimits(requests=1), now=time.time())
            assert isinstance(result, Reservation) and store.degraded
            assert await store.cache_get("nope", now=time.time()) is None
        finally:
            await store.close()

    asyncio.run(scenario())
