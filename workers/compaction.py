"""Rate-window compaction: keep the store's size flat however long the gateway runs.

Reservations trim the window of the key they touch, but a key that goes idle keeps its last
minute of entries, and per-minute history, in-flight marks of crashed processes, expired cache
index entries and old roll-ups only go when something removes them. This cron job calls
``RuntimeStore.compact`` for every configured provider key: it removes window entries older than
the window, history older than ``workers.history``, stale in-flight marks, expired cache
entries and claims, and roll-ups past their retention. Running it twice changes nothing.
"""

from __future__ import annotations

import time

from storage.base import WINDOW_SECONDS


async def compact_windows(ctx: dict) -> dict:
    job = ctx["coo"]
    removed = await job.store.compact(job.key_ids, window=WINDOW_SECONDS, history=job.settings.workers.history, now=time.time())
    return {"outcome": "success", "removed": removed}
