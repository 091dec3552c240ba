"""The memory backend's compact window (two flat arrays per key) across the point where the
expired front is dropped: counts, token sums and settle corrections stay right."""

from __future__ import annotations

import asyncio

from storage.base import Reservation, WindowLimits
from storage.memory import MemoryStore

T0 = 1_800_000_000.0


def test_window_stays_exact_across_front_drops():
    async def scenario():
        store = MemoryStore()
        limits = WindowLimits(requests=None, tokens=None, window=60)
        held: list[Reservation] = []
        for i in range(18000):  # 100 a second for three minutes: the expired front is dropped several times
            now = T0 + i / 100
            lease = await store.reserve("p#1", tokens=10, limits=limits, now=now)
            held.append(lease)
            if i >= 50:  # settle the reservation made half a second ago with its real usage
                await store.settle(held[i - 50], tokens=3, failed=False, latency=0.1, now=now)
        state = (await store.key_states(["p#1"], window=60, now=T0 + 180))["p#1"]
        return store, held, state

    store, held, state = asyncio.run(scenario())
    # Entries after T0 + 120 s are in the window (the one at exactly T0 + 120 is at the cutoff, so
    # out): 5999 of them, all but the last 50 settled to 3 tokens.
    assert state.requests == 5999
    assert state.tokens == (5999 - 50) * 3 + 50 * 10
    assert state.inflight == 50
    key = store._keys["p#1"]
    assert key.base > 0 and len(key.times) < 12000  # the expired front was dropped, not kept forever
    assert len({lease.entry_id for lease in held}) == 18000


def test_compaction_drops_the_state_of_keys_no_longer_listed():
    async def scenario():
        store = MemoryStore()
        limits = WindowLimits(requests=10)
        kept = await store.reserve("listed", tokens=1, limits=limits, now=T0)
        gone = await store.reserve("removed", tokens=1, limits=limits, now=T0)
        await store.settle(kept, tokens=1, failed=False, latency=0.1, now=T0)
        await store.settle(gone, tokens=1, failed=False, latency=0.1, now=T0)
        inside_window = await store.compact(["listed"], window=60, history=3600, now=T0 + 30)
        still = "removed" in store._keys
        await store.compact(["listed"], window=60, history=3600, now=T0 + 61)
        return still, "removed" in store._keys, "listed" in store._keys

    still, after, listed = asyncio.run(scenario())
    assert still is True  # its window still counts for another 30 s
    assert after is False and listed is True
