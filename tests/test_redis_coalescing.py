"""Hot script calls share pipelines, one batch at a time (``storage.redis_transport.Coalescer``), on a real
redis-server: each call stays its own atomic script, calls made while a batch is on its way form
the next one, and a batch that cannot finish in time fails every call in it (the resilient store
then serves from memory)."""

from __future__ import annotations

import asyncio
import time

from app.config import RuntimeStorage
from storage import Refusal, Reservation, WindowLimits, open_store
from storage.redis import RedisStore

T0 = 1_800_000_000.0


def hot_connections(store: RedisStore) -> int:
    pool = store.transport.hot_client.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


def test_concurrent_reservations_share_batches_one_at_a_time_and_stay_exact(redis_server):
    redis_server.flush()

    async def scenario():
        store = open_store(RuntimeStorage(type="redis", url=redis_server.url, timeout=5), resilient=False)
        try:
            limits = WindowLimits(requests=25, tokens=None)
            first = [asyncio.ensure_future(store.reserve("p#1", tokens=3, limits=limits, now=T0)) for _ in range(40)]
            for _ in range(3):
                await asyncio.sleep(0)  # the first batch is on its way now
            second = [asyncio.ensure_future(store.reserve("p#1", tokens=3, limits=limits, now=T0)) for _ in range(40)]
            results = await asyncio.gather(*first, *second)
            connections = hot_connections(store)
            states = await store.key_states(["p#1"], window=60, now=T0)
            return results, connections, states["p#1"]
        finally:
            await store.close()

    results, connections, state = asyncio.run(scenario())
    granted = [r for r in results if isinstance(r, Reservation)]
    assert len(granted) == 25 and all(isinstance(r, Refusal) and r.reason == "requests" for r in results if r not in granted)
    assert len({r.entry_id for r in granted}) == 25
    assert connections == 1  # 80 calls in two waves: one batch after the other, on one connection
    assert (state.requests, state.tokens, state.inflight) == (25, 75, 25)


def test_a_batch_that_times_out_fails_its_calls_and_the_gateway_falls_back(redis_server):
    redis_server.flush()

    async def scenario():
        store = open_store(RuntimeStorage(type="redis", url=redis_server.url, timeout=0.2))
        limits = WindowLimits(requests=5, tokens=None)
        try:
            assert isinstance(await store.reserve("p#1", tokens=1, limits=limits, now=T0), Reservation)
            # Block the server longer than the batch may take: the next batch times out.
            blocker = asyncio.create_task(asyncio.to_thread(redis_server_sleep, redis_server.port, 0.6))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            results = await asyncio.gather(*(store.reserve("p#2", tokens=1, limits=limits, now=T0) for _ in range(3)))
            waited = time.monotonic() - started
            await blocker
            return results, waited, store.degraded
        finally:
            await store.close()

    results, waited, degraded = asyncio.run(scenario())
    assert degraded  # the timed-out batch turned the store to memory fallback
    assert all(isinstance(r, Reservation) and r.entry_id.startswith("local:") for r in results)
    assert waited < 0.5  # bounded by the batch timeout, not by the blocked server


# A script that keeps the (single-threaded) server busy for ARGV[1] microseconds.
_BUSY = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then return 1 end
end
"""


def redis_server_sleep(port: int, seconds: float) -> None:
    from servers import redis_command

    redis_command(port, "EVAL", _BUSY, "0", str(int(seconds * 1_000_000)))
