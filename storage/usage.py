"""Usage events and their roll-ups: the shapes every backend stores, and the pure arithmetic on them.

One ``UsageEvent`` is appended per finished request. A fold turns a batch of events into
``Rollup`` increments, keyed by ``(granularity, bucket start, dims)`` where granularity is
``"hour"`` or ``"day"`` (UTC) and dims are ``(client, provider, model, key)``; a backend adds a
batch and advances its cursor in one atomic step (``RuntimeStore.apply_rollup``).

Queries read whole buckets: ``plan_buckets(start, end)`` covers ``[start, end)`` rounded out to
hours, using day buckets for the whole days inside, ``group_rows`` sums rows by one dimension, and
``usage_report`` answers ``GET /admin/v1/usage`` from a store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import orjson

HOUR = 3600
DAY = 86400
GRANULARITIES = {"hour": HOUR, "day": DAY}
# How long roll-ups are kept (backends expire or prune older buckets).
RETENTION = {"hour": 35 * DAY, "day": 400 * DAY}

# Totals kept per bucket and dims. ``ok`` counts 2xx answers, ``errors`` 4xx/5xx, ``cache_hits``
# answers served from the response cache (which cost 0 and save ``saved_usd``).
METRICS = ("requests", "ok", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd", "saved_usd", "latency_ms")
DIMENSIONS = ("client", "provider", "model", "key")

Dims = tuple[str, str, str, str]
RollupKey = tuple[str, int, Dims]
Rollup = dict[RollupKey, dict[str, float]]


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One finished request. ``key`` is the masked provider key id; ``client`` the masked client key id."""

    at: float
    client: str = ""
    provider: str = ""
    key: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    status: int = 200
    latency_ms: float = 0.0
    cache_hit: bool = False
    saved: float = 0.0
    request_id: str = ""

    def dumps(self) -> str:
        return orjson.dumps(self).decode()  # orjson writes a dataclass's fields in order, as asdict would

    @classmethod
    def loads(cls, text: str | bytes) -> "UsageEvent":
        data = orjson.loads(text)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    @property
    def dims(self) -> Dims:
        return (self.client, self.provider, self.model, self.key)

    def increments(self) -> dict[str, float]:
        return {
            "requests": 1,
            "ok": 1 if 200 <= self.status < 300 else 0,
            "errors": 1 if self.status >= 400 else 0,
            "cache_hits": 1 if self.cache_hit else 0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost,
            "saved_usd": self.saved,
            "latency_ms": self.latency_ms,
        }


def bucket_start(at: float, granularity: str) -> int:
    size = GRANULARITIES[granularity]
    return int(at // size) * size


def fold(events: Iterable[UsageEvent]) -> Rollup:
    """Sum events into hour and day buckets."""
    rollup: Rollup = {}
    for event in events:
        increments = event.increments().items()
        dims = event.dims
        for granularity, size in GRANULARITIES.items():
            key = (granularity, int(event.at // size) * size, dims)
            totals = rollup.get(key)
            if totals is None:
                totals = rollup[key] = dict.fromkeys(METRICS, 0)
            for name, value in increments:
                totals[name] += value
    return rollup


def plan_buckets(start: float, end: float) -> list[tuple[str, int]]:
    """The buckets covering ``[start, end)``: hours at the edges, whole UTC days in between."""
    hour = bucket_start(start, "hour")
    buckets: list[tuple[str, int]] = []
    while hour < end:
        if hour % DAY == 0 and hour + DAY <= end:
            buckets.append(("day", hour))
            hour += DAY
        else:
            buckets.append(("hour", hour))
            hour += HOUR
    return buckets


def field_name(dims: Dims, metric: str) -> str:
    """How a (dims, metric) total is named inside a bucket hash (tabs never occur in ids)."""
    return "\t".join(dims) + "\t" + metric


def parse_field(name: str) -> tuple[Dims, str]:
    parts = name.split("\t")
    return (parts[0], parts[1], parts[2], parts[3]), parts[4]


def group_rows(rows: Iterable[tuple[Dims, dict[str, float]]], group_by: str) -> list[dict]:
    """Sum rows by one of ``DIMENSIONS``; largest cost first."""
    index = DIMENSIONS.index(group_by)
    groups: dict[str, dict[str, float]] = {}
    for dims, totals in rows:
        sums = groups.setdefault(dims[index], dict.fromkeys(METRICS, 0))
        for name in METRICS:
            sums[name] += totals.get(name, 0)
    out = [{group_by: name, **_tidy(sums)} for name, sums in groups.items()]
    out.sort(key=lambda row: (-row["cost_usd"], -row["requests"], row[group_by]))
    return out


def total_of(rows: Sequence[dict]) -> dict[str, float]:
    sums = dict.fromkeys(METRICS, 0)
    for row in rows:
        for name in METRICS:
            sums[name] += row[name]
    return _tidy(sums)


def _tidy(sums: dict[str, float]) -> dict[str, float]:
    """Counts as ints, money rounded to 1e-9 USD (float sums drift in the last digits)."""
    return {name: (round(value, 9) if name in ("cost_usd", "saved_usd", "latency_ms") else int(round(value))) for name, value in sums.items()}


GROUPS = DIMENSIONS  # client | provider | model | key


async def usage_report(store, *, start: float, end: float, group_by: str) -> dict:
    """Totals of ``[start, end)`` (rounded out to whole hours) grouped by one dimension."""
    buckets = plan_buckets(start, end)
    rows = group_rows(await store.rollup_rows(buckets), group_by)
    first = buckets[0][1] if buckets else int(start)
    last = (buckets[-1][1] + (86400 if buckets[-1][0] == "day" else 3600)) if buckets else int(end)
    return {
        "object": "usage",
        "from": first,
        "to": last,
        "group_by": group_by,
        "data": rows,
        "total": total_of(rows),
        "generated_at": time.time(),
    }
