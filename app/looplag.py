"""Event-loop lag: how late the loop runs a timer, observed into ``coo_llm_event_loop_lag_seconds``.

Every ``interval`` seconds the watcher sleeps and measures how much later than asked it woke.
Idle, that is a fraction of a millisecond; under load it is the time the loop spends on one
round of ready callbacks. Anything that blocks the loop (a synchronous call, a slow log write)
shows up as a sample of that length, which is what the benchmark and ``/metrics`` watch for.
"""

from __future__ import annotations

import asyncio

from app import metrics

INTERVAL = 0.05


async def watch_loop_lag(interval: float = INTERVAL) -> None:
    """Run until cancelled (one task per web process)."""
    loop = asyncio.get_running_loop()
    observe = metrics.EVENT_LOOP_LAG.observe
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))
