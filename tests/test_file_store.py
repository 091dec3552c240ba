"""The file backend keeps the ledger, roll-ups, health and cache across restarts, and loses at most
the events recorded since its last flush when killed with SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage.base import CacheEntry, WindowLimits
from storage.file import FileStore
from storage.usage import UsageEvent, fold

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0


def test_ledger_rollups_health_and_cache_survive_a_restart(tmp_path):
    path = tmp_path / "state.db"

    async def first_life():
        store = FileStore(path)
        lease = await store.reserve("p#1", tokens=5, limits=WindowLimits(requests=10), now=T0)
        await store.settle(lease, tokens=5, failed=True, latency=None, now=T0)
        await store.cool_down("p#1", T0 + 500)
        await store.cache_put(CacheEntry("k", b'{"a":1}', time.time() + 300, meta={"cost": 0.1}), now=time.time())
        await store.append_events([UsageEvent(at=T0 + i, client="ck-1", cost=0.5) for i in range(4)])
        cursor = await store.rollup_cursor()
        batch = await store.read_events(cursor, limit=2)
        assert await store.apply_rollup(fold(e for _, e in batch), expected=cursor, cursor=batch[-1][0])
        await store.close()

    async def second_life():
        store = FileStore(path)
        try:
            state = (await store.key_states(["p#1"], window=60, now=T0 + 1))["p#1"]
            assert state.cooldown_until == T0 + 500 and state.failures == 1 and state.error_rate > 0
            assert state.requests == 0  # windows are hot state: they start empty
            assert (await store.cache_get("k", now=time.time())).body == b'{"a":1}'
            rows = await store.rollup_rows([("hour", int(T0 // 3600) * 3600)])
            assert sum(r["requests"] for _, r in rows) == 2
            left = await store.read_events(await store.rollup_cursor(), limit=10)
            assert [e.at for _, e in left] == [T0 + 2, T0 + 3]  # the unfolded half of the ledger
        finally:
            await store.close()

    asyncio.run(first_life())
    asyncio.run(second_life())


_WRITER = """
import asyncio, sys, time
from storage.file import FileStore
from storage.usage import UsageEvent
async def main():
    store = FileStore(sys.argv[1], flush_interval=0.2)
    await store.append_events([UsageEvent(at=i, request_id="early") for i in range(50)])
    await asyncio.sleep(0.6)  # several flush intervals: the early events are committed
    await store.append_events([UsageEvent(at=i, request_id="late") for i in range(50)])
    print("ready", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


def test_kill_9_loses_at_most_what_came_after_the_last_flush(tmp_path):
    path = tmp_path / "state.db"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)

    async def count():
        store = FileStore(path)
        try:
            events = await store.read_events("", limit=1000)
        finally:
            await store.close()
        return [e.request_id for _, e in events]

    ids = asyncio.run(count())
    assert ids.count("early") == 50  # everything older than one flush interval survived
    assert ids.count("late") in (0, 50)  # the last batch is all or nothing (one transaction)
