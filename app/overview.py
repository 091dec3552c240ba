"""The admin overview: the whole gateway's last minute and its day so far, read from the store.

Rates, error rates and latency percentiles come from the store's recent request records
(``storage.base`` contract 10), which every web process pushes (``app.accounting``). With a
shared store (Redis, webdis) they therefore cover every process of the gateway; with memory or
file storage, the process that answers. The list keeps the newest ``RECENT_MAX`` records: when
the last minute held more than that, the figures cover the span the list still holds, and
``window_s`` says how long that is.

Tokens and USD today come from the usage roll-ups (``storage.usage.usage_report``, the UTC day
so far), so they trail live traffic by up to one roll-up period (``workers.rollup_every``).
"""

from __future__ import annotations

import math
from typing import Sequence

from storage.base import RECENT_MAX, StoreUnavailable
from storage.usage import bucket_start, usage_report

WINDOW_SECONDS = 60.0
# The shortest span rates are divided by, so a burst in the last instant is not a huge rate.
MIN_SPAN_SECONDS = 1.0


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0 < q <= 1) of ascending values; None when there are none."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize_recent(records: Sequence[dict], *, now: float, window: float = WINDOW_SECONDS, capacity: int = RECENT_MAX) -> dict:
    """Figures of the records (newest first, as ``recent_list`` returns them) finished in the
    last ``window`` seconds before ``now``.

    If the list is full (``capacity`` records) and even its oldest record is inside the window,
    older requests of the window were cut from it: rates then cover only the span from that
    oldest record to ``now``.
    """
    inside = [r for r in records if r.get("at", 0) > now - window]
    span = window
    if inside and len(records) >= capacity and len(inside) == len(records):
        span = max(MIN_SPAN_SECONDS, now - min(r["at"] for r in inside))
    count = len(inside)
    errors = sum(1 for r in inside if r.get("status", 0) >= 400)
    server_errors = sum(1 for r in inside if r.get("status", 0) >= 500)
    latencies = sorted(float(r.get("latency_ms", 0.0)) for r in inside)
    hits = sum(1 for r in inside if r.get("cache") == "hit")
    misses = sum(1 for r in inside if r.get("cache") == "miss")
    tokens = sum(int(r.get("prompt_tokens") or 0) + int(r.get("completion_tokens") or 0) for r in inside)
    cost = sum(float(r.get("cost_usd") or 0.0) for r in inside)
    return {
        "window_s": round(span, 3),
        "requests": count,
        "requests_per_s": round(count / span, 4),
        "errors": errors,
        "error_rate": round(errors / count, 4) if count else None,
        "server_errors": server_errors,
        "latency_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)},
        "tokens": tokens,
        "tokens_per_s": round(tokens / span, 4),
        "cost_usd": round(cost, 9),
        "cache": {"hits": hits, "misses": misses, "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None},
    }


def summarize_day(total: dict) -> dict:
    """Today's figures from a roll-up total (``storage.usage.total_of``)."""
    requests = total.get("requests", 0)
    return {
        "requests": requests,
        "errors": total.get("errors", 0),
        "prompt_tokens": total.get("prompt_tokens", 0),
        "completion_tokens": total.get("completion_tokens", 0),
        "tokens": total.get("prompt_tokens", 0) + total.get("completion_tokens", 0),
        "cost_usd": total.get("cost_usd", 0.0),
        "saved_usd": total.get("saved_usd", 0.0),
        "cache_hits": total.get("cache_hits", 0),
        "cache_hit_rate": round(total.get("cache_hits", 0) / requests, 4) if requests else None,
    }


async def cluster_overview(store, *, now: float) -> dict:
    """``GET /admin/v1/overview``: the last minute (recent records) and the UTC day so far (roll-ups).

    ``today`` is None while the store cannot give roll-ups (a networked store that is away:
    ``store.degraded``); ``last_minute`` is then this process's own records.
    """
    last_minute = summarize_recent(await store.recent_list(RECENT_MAX), now=now)
    day = bucket_start(now, "day")
    try:
        report = await usage_report(store, start=day, end=now, group_by="provider") if now > day else None
    except StoreUnavailable:
        today = None
    else:
        today = {"from": day, **summarize_day(report["total"] if report else {})}
    return {
        "object": "overview",
        "generated_at": now,
        "last_minute": last_minute,
        "today": today,
        "store": {"type": store.name, "shared": bool(store.shared), "degraded": bool(getattr(store, "degraded", False))},
        "recent_capacity": RECENT_MAX,
    }
