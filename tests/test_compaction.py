"""Redis memory stays flat under constant load when the compaction job runs, and grows without it.

Half an hour of traffic on 20 keys is replayed through the real store in simulated time (the
store takes ``now`` from its caller), with ``compact_windows`` every simulated minute; Redis's own
the bytes its keys take (``MEMORY USAGE`` of each) are summed each minute. Not
``INFO used_memory``: that also holds client buffers, which moved by tens of KB between samples
and once made the run without compaction look like it shrank.
"""

from __future__ import annotations

import asyncio

import redis

from app.config import RuntimeStorage, Settings
from servers import RedisServer
from storage import WindowLimits, open_store
from workers.compaction import compact_windows

T0 = 1_800_000_000.0
KEYS = [f"flat#{n}" for n in range(20)]


class _Context:
    """The slice of ``JobContext`` the compaction job reads."""

    def __init__(self, store) -> None:
        self.store = store
        self.settings = Settings.model_validate({"workers": {"history": "10m"}})
        self.key_ids = KEYS


def data_bytes(server: RedisServer) -> int:
    """What every key in the server takes, by Redis's own count (all of each value: ``SAMPLES 0``)."""
    client = redis.Redis(port=server.port)
    try:
        keys = list(client.scan_iter(count=1000))
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(size or 0 for size in pipe.execute())
    finally:
        client.close()


def replay(server: RedisServer, *, compact: bool, minutes: int = 30) -> tuple[list[int], list[int]]:
    """(Redis data bytes, stored history points) after each simulated minute."""

    async def run() -> tuple[list[int], list[int]]:
        store = open_store(RuntimeStorage(type="redis", url=server.url, timeout=5), resilient=False)
        limits = WindowLimits(requests=10_000, tokens=None)
        memory, points = [], []
        try:
            for minute in range(minutes):
                now = T0 + 60 * minute
                for offset in range(30):  # a request every 2 s on every key
                    for key in KEYS:
                        lease = await store.reserve(key, tokens=50, limits=limits, now=now + 2 * offset)
                        await store.settle(lease, tokens=40, failed=False, latency=0.2, now=now + 2 * offset)
                if compact:  # what compact_windows does, at the end of each simulated minute
                    await store.compact(KEYS, window=60, history=600, now=now + 60)
                memory.append(data_bytes(server))
                points.append((await store.footprint(KEYS))["history_points"])
        finally:
            await store.close()
        return memory, points

    server.flush()
    return asyncio.run(run())


def test_redis_memory_is_flat_with_compaction_and_grows_without(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        flat = replay(server, compact=True)
        growing = replay(server, compact=False)
    finally:
        server.stop()
    (flat, flat_points), (growing, growing_points) = flat, growing
    # With compaction: once the 10 minutes of history are full, nothing grows any more.
    assert set(flat_points[10:]) == {20 * 10}, flat_points
    assert max(flat[12:]) - min(flat[12:]) <= 2048, flat
    # Without it, per-minute history piles up on every key, and Redis memory with it.
    assert growing_points[-1] == 20 * 30 and growing_points == sorted(growing_points)
    assert growing[-1] - growing[12] > 6000, growing


def test_the_compaction_job_trims_every_configured_key():
    from storage.memory import MemoryStore

    async def run():
        store = MemoryStore()
        import time

        now = time.time()
        for key in KEYS:
            await store.reserve(key, tokens=5, limits=WindowLimits(), now=now - 3600)  # an hour-old, idle window
        before = await store.footprint(KEYS)
        result = await compact_windows({"coo": _Context(store)})
        return before, result, await store.footprint(KEYS)

    before, result, after = asyncio.run(run())
    assert before["window_entries"] == 20 and after["window_entries"] == 0
    assert after["history_points"] == 0 and result == {"outcome": "success", "removed": 60}
