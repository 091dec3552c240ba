"""The admin overview's arithmetic (``app.overview``) on records and roll-ups a real store holds."""

from __future__ import annotations

import asyncio

import pytest

from app.overview import cluster_overview, percentile, summarize_recent
from storage.memory import MemoryStore
from storage.usage import UsageEvent, fold

NOW = 1_800_000_000.0 + 3 * 3600 + 120  # 03:02 UTC on a fixed day


def record(at: float, *, status: int = 200, latency: float = 10.0, cache: str = "", tokens: tuple[int, int] = (0, 0), cost: float | None = 0.0) -> dict:
    return {"id": f"r{at}", "at": at, "status": status, "latency_ms": latency, "cache": cache,
            "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "cost_usd": cost}


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99 and percentile(values, 1.0) == 100
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None


def test_the_last_minute_counts_rates_errors_latency_and_cache_and_ignores_older_records():
    records = [record(NOW - 1 - i, status=500 if i % 10 == 0 else (404 if i % 10 == 1 else 200), latency=float(i + 1),
                      cache="hit" if i % 4 == 0 else "miss", tokens=(10, 5), cost=0.001) for i in range(30)]
    records += [record(NOW - 61 - i, status=500, latency=9999.0) for i in range(20)]  # older than a minute: not counted
    summary = summarize_recent(records, now=NOW, capacity=1000)
    assert summary["requests"] == 30 and summary["window_s"] == 60
    assert summary["requests_per_s"] == pytest.approx(0.5)
    assert summary["errors"] == 6 and summary["server_errors"] == 3 and summary["error_rate"] == pytest.approx(0.2)
    assert summary["latency_ms"] == {"p50": 15.0, "p99": 30.0}
    assert summary["cache"] == {"hits": 8, "misses": 22, "hit_rate": pytest.approx(8 / 30, abs=1e-4)}
    assert summary["tokens"] == 450 and summary["cost_usd"] == pytest.approx(0.03)


def test_a_full_list_inside_the_minute_gives_rates_over_the_span_it_covers():
    # 100 records over the last 10 s and a list capped at 100: older requests of the minute were cut.
    records = [record(NOW - 0.1 * i) for i in range(100)]
    summary = summarize_recent(records, now=NOW, capacity=100)
    assert summary["window_s"] == pytest.approx(9.9)
    assert summary["requests_per_s"] == pytest.approx(100 / 9.9, rel=1e-3)
    # The same records in a list that is not full cover the whole minute.
    assert summarize_recent(records, now=NOW, capacity=1000)["requests_per_s"] == pytest.approx(100 / 60, rel=1e-3)


def test_no_traffic_is_zero_requests_and_no_rates_that_would_divide_by_zero():
    summary = summarize_recent([], now=NOW)
    assert summary["requests"] == 0 and summary["requests_per_s"] == 0
    assert summary["error_rate"] is None and summary["latency_ms"] == {"p50": None, "p99": None} and summary["cache"]["hit_rate"] is None


def test_overview_reads_today_from_the_roll_ups_and_the_minute_from_the_recent_list():
    async def scenario():
        store = MemoryStore()
        day = NOW - (NOW % 86400)
        events = [
            UsageEvent(at=day + 60, client="ck-1", provider="oa", key="oa#1", model="m", prompt_tokens=100, completion_tokens=50, cost=0.25),
            UsageEvent(at=NOW - 30, client="ck-1", provider="oa", key="oa#1", model="m", prompt_tokens=10, completion_tokens=5, cost=0.05, cache_hit=True, saved=0.1),
            UsageEvent(at=day - 60, client="ck-1", provider="oa", key="oa#1", model="m", prompt_tokens=999, completion_tokens=999, cost=9.0),  # yesterday
        ]
        await store.apply_rollup(fold(events), expected="", cursor="3")
        await store.recent_push([record(NOW - 5, latency=12.0), record(NOW - 4, status=502, latency=40.0)])
        return await cluster_overview(store, now=NOW)

    overview = asyncio.run(scenario())
    today = overview["today"]
    assert today["from"] == NOW - NOW % 86400
    assert (today["requests"], today["prompt_tokens"], today["completion_tokens"], today["tokens"]) == (2, 110, 55, 165)
    assert today["cost_usd"] == pytest.approx(0.30) and today["saved_usd"] == pytest.approx(0.1)
    assert today["cache_hits"] == 1 and today["cache_hit_rate"] == 0.5
    minute = overview["last_minute"]
    assert minute["requests"] == 2 and minute["error_rate"] == 0.5 and minute["latency_ms"] == {"p50": 12.0, "p99": 40.0}
    assert overview["store"] == {"type": "memory", "shared": False, "degraded": False}
