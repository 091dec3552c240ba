"""Cost roll-ups: fold usage events into hourly and daily totals (``storage.usage.usage_report`` reads them).

``fold_usage(store)``:

1. Read the roll-up cursor, then up to ``batch`` events after it.
2. Sum them (``storage.usage.fold``) per (hour and day, client, provider, model, key).
3. ``apply_rollup`` adds the sums and moves the cursor to the last event in one atomic step,
   only if the cursor is still where step 1 found it. Otherwise another worker folded that
   batch: start again from the new cursor.

A crash between 1 and 3 leaves cursor and totals untouched, so the next run folds the same
events again: no event is lost and none is counted twice, however many workers race.
"""

from __future__ import annotations

from storage.usage import fold


async def fold_usage(store, *, batch: int = 1000, max_batches: int = 1000) -> int:
    """Fold every pending event (up to ``batch * max_batches``); returns how many were folded here."""
    folded = 0
    for _ in range(max_batches):
        cursor = await store.rollup_cursor()
        events = await store.read_events(cursor, limit=batch)
        if not events:
            break
        if await store.apply_rollup(fold(event for _, event in events), expected=cursor, cursor=events[-1][0]):
            folded += len(events)
    return folded


async def rollup_usage(ctx: dict) -> dict:
    """Cron job: fold pending usage events."""
    folded = await fold_usage(ctx["coo"].store)
    return {"outcome": "success", "folded": folded}
