"""The cycle collector on a schedule instead of on allocation counts.

A request's objects die by reference counting; nearly nothing it allocates needs the cycle
collector. Python's default (a young-generation collection every 700 net allocations) ran about
170 collections a second under load and promoted live request objects into full collections of
~50 ms; even at 10,000 allocations a collection came every few dozen requests, each walking every
object of the requests in flight. So a web process freezes its start-up objects (modules, config,
routes: never scanned again), turns automatic collection off, and ``collect_on_schedule`` runs
the young generation every ``YOUNG_EVERY`` seconds, the middle one every ``MIDDLE_EVERY`` and a
full collection every ``FULL_EVERY``: garbage cycles (an exception kept with its traceback, an
asyncio future that points back at its task) live at most a second or so, and the work is
independent of the request rate.
"""

from __future__ import annotations

import asyncio
import gc

YOUNG_EVERY = 1.0
MIDDLE_EVERY = 10.0
FULL_EVERY = 300.0


def freeze_and_stop() -> None:
    """Collect once, freeze what exists (start-up objects), and stop automatic collection."""
    gc.collect()
    gc.freeze()
    gc.disable()


async def collect_on_schedule() -> None:
    """Run until cancelled (one task per process that called ``freeze_and_stop``)."""
    ticks = 0
    middle, full = round(MIDDLE_EVERY / YOUNG_EVERY), round(FULL_EVERY / YOUNG_EVERY)
    while True:
        await asyncio.sleep(YOUNG_EVERY)
        ticks += 1
        gc.collect(2 if ticks % full == 0 else 1 if ticks % middle == 0 else 0)
