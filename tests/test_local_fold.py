"""Without Redis, usage events are folded as soon as a backlog of them was stored, not only on
the ``rollup_every`` period: the events a busy process keeps in memory stay bounded."""

from __future__ import annotations

import asyncio
import time

from app.accounting import UsageSink
from app.config import settings_from_data
from storage.memory import MemoryStore
from storage.usage import UsageEvent, plan_buckets
from workers.context import JobContext
from workers.queue import FOLD_BACKLOG, LocalQueue


def test_a_backlog_of_stored_events_is_folded_at_once():
    settings = settings_from_data({"llm_providers": [], "workers": {"rollup_every": 3600}})

    async def scenario():
        store = MemoryStore()
        queue = LocalQueue(settings, JobContext(settings, store, None))
        sink = UsageSink(store, interval=0.01, on_stored=queue.events_stored)
        now = time.time()
        for i in range(FOLD_BACKLOG - 1):
            sink.add(UsageEvent(at=now, client="c", provider="p", model="m", key="p#1", prompt_tokens=2, request_id=str(i)))
        await asyncio.sleep(0.2)
        below = (await store.footprint([]))["events"]
        for i in range(FOLD_BACKLOG + 500):
            sink.add(UsageEvent(at=now, client="c", provider="p", model="m", key="p#1", prompt_tokens=2, request_id=str(i)))
        await asyncio.sleep(0.2)
        after = (await store.footprint([]))["events"]
        rows = await store.rollup_rows(plan_buckets(now - 3600, now + 3600))
        await sink.close()
        await queue.close()
        return below, after, rows

    below, after, rows = asyncio.run(scenario())
    assert below == FOLD_BACKLOG - 1  # under the backlog: nothing folded before the period
    assert after < FOLD_BACKLOG  # the backlog was folded without waiting an hour
    folded = sum(totals["requests"] for _, totals in rows)
    assert folded + after == 2 * FOLD_BACKLOG - 1 + 500 and folded > 0
