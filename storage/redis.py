"""Runtime state in Redis: every web and worker process sharing one Redis behaves as one gateway.

Each store call is ONE Lua script (``storage.redis_scripts``; EVALSHA, the script is loaded on
first ``NOSCRIPT``), so a check-and-reserve is atomic across processes and costs one round trip.
Every script touches the keys of one hash tag (``storage.keys``), so the same code runs on Redis
Cluster. ``RedisStore`` turns the ``storage.base`` calls into script arguments and replies back
into values; a ``storage.redis_transport.Transport`` carries them (redis-py, or webdis through
``storage.http``).

``RedisStore`` is wrapped by ``storage.resilient.ResilientStore`` (see ``open_store``), which
keeps the gateway serving from memory when Redis cannot be reached.

Timestamps come from the caller (``now``), as the ``storage.base`` contract says: processes on
different machines must keep their clocks in sync (NTP); skew shifts a window edge by the skew.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import orjson

from storage import keys
from storage.base import EWMA_ALPHA, INFLIGHT_STALE, RECENT_MAX, CacheEntry, KeyState, Refusal, Reservation, WindowLimits
from storage.redis_scripts import (
    COUNTERS_ADD,
    COUNTERS_DROP,
    DOC_DELETE,
    DOC_INDEX,
    DOC_PUT,
    DOC_READ,
    DOC_UNINDEX,
    CACHE_COUNT,
    CACHE_DROP,
    CACHE_GET,
    CACHE_INDEX_RANGE,
    CACHE_PEEK,
    CACHE_PUT,
    CACHE_TRIM,
    CLAIM,
    COMPACT_KEY,
    COOL_DOWN,
    EVENTS_APPEND,
    EVENTS_COUNT,
    EVENTS_READ,
    GET_CURSOR,
    HOT_CALLS,
    KEY_FOOTPRINT,
    KEY_STATE,
    READ_HASH,
    RECENT_LIST,
    RECENT_PUSH,
    RESERVE,
    RESET_KEY,
    ROLLUP_APPLY,
    ROLLUP_READ,
    SETTLE,
)
from storage.redis_transport import Transport
from storage.usage import RETENTION, Dims, Rollup, UsageEvent, field_name, parse_field

# Provider-key state expires a day after its last reservation (health included, unless cooling
# longer); RESERVE refreshes the TTLs at most once a minute, so "a day" is a day minus up to a minute.
KEY_TTL_MS = 86_400_000
# Unfolded usage events kept at most (approximately); beyond that the oldest are dropped.
EVENTS_MAX = 2_000_000
# Idempotent appends: one writer mark per chunk of a batch (a batch has fewer chunks than this),
# remembered a week after a writer's last append, longer than any batch waits to be sent again.
MARKS_PER_BATCH = 1_000_000
WRITER_TTL_MS = 7 * 86_400_000
CHUNK = 500


def num(value: float | int) -> str:
    """A number as Redis reads it: ints as ints, floats with full precision."""
    return str(value) if isinstance(value, int) else repr(float(value))


def _key_state(r: Sequence[Any]) -> KeyState:
    """A ``KeyState`` from KEY_STATE's reply (also the tail of RESERVE's)."""
    return KeyState(
        requests=int(r[0]),
        tokens=int(float(r[1])),
        inflight=int(r[2]),
        cooldown_until=float(r[3]),
        failures=int(float(r[4])),
        error_rate=float(r[5]),
        latency=float(r[6]),
    )


def _minute(at: float) -> str:
    return str(int(at // 60) * 60)


class RedisStore:
    """The shared runtime store over a ``Transport`` (see the module docstring)."""

    shared = True

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.name = transport.name
        # Store calls made only of hot scripts, when the transport bounds those by itself (one
        # timer per batch): ``ResilientStore`` then adds no timer of its own per call.
        self.self_bounded = HOT_CALLS if getattr(transport, "bounds_hot_calls", False) else frozenset()
        self.self_bound = getattr(transport, "hot_timeout", None)  # seconds

    # ------------------------------------------------------------------ windows and health

    async def reserve(self, key_id: str, *, tokens: int, limits: WindowLimits, now: float) -> Reservation | Refusal:
        names = keys.provider_key(key_id)
        args = (
            num(now),
            num(now - limits.window),
            -1 if limits.requests is None else limits.requests,
            -1 if limits.tokens is None else limits.tokens,
            int(tokens),
            num(limits.window),
            _minute(now),
            KEY_TTL_MS,
        )
        reply = await self.transport.run(RESERVE, names, args)
        if int(reply[0]) == 1:
            return Reservation(key_id, str(reply[1]), int(tokens), now, _key_state(reply[2:]) if len(reply) >= 9 else None)
        return Refusal(key_id, max(0.0, float(reply[1])), str(reply[2]))

    async def settle(
        self, reservation: Reservation, *, tokens: int, failed: bool | None, latency: float | None, now: float
    ) -> int:
        names = keys.provider_key(reservation.key_id)
        flag = "" if failed is None else ("1" if failed else "0")
        args = (reservation.entry_id, int(tokens), reservation.tokens, flag, "" if latency is None else num(latency), _minute(reservation.at), num(EWMA_ALPHA))
        return int(await self.transport.run(SETTLE, names, args))

    async def cool_down(self, key_id: str, until: float) -> None:
        await self.transport.run(COOL_DOWN, [keys.provider_key(key_id).health], [num(until), KEY_TTL_MS])

    async def reset_key(self, key_id: str) -> None:
        await self.transport.run(RESET_KEY, [keys.provider_key(key_id).health], [])

    async def key_states(self, key_ids: list[str], *, window: float, now: float) -> dict[str, KeyState]:
        args = (num(now - window), num(now - INFLIGHT_STALE))
        calls = [(KEY_STATE, keys.provider_key(k)[:4], args) for k in key_ids]
        replies = await self.transport.run_many(calls)
        return {key_id: _key_state(r) for key_id, r in zip(key_ids, replies)}

    # ------------------------------------------------------------------ response cache

    async def cache_get(self, key: str, *, now: float) -> CacheEntry | None:
        reply = await self.transport.run(CACHE_GET, [keys.cache_entry(key)], [num(now)])
        if not reply:
            return None
        body, expires, hits, meta = reply
        return CacheEntry(key, body.encode(), float(expires), int(hits), orjson.loads(meta or "{}"))

    async def cache_put(self, entry: CacheEntry, *, now: float) -> None:
        ttl_ms = int((entry.expires_at - now) * 1000)
        if ttl_ms <= 0:
            return
        args = (entry.key, entry.body.decode(), num(entry.expires_at), orjson.dumps(entry.meta).decode(), num(now), ttl_ms)
        await self.transport.run(CACHE_PUT, [keys.cache_entry(entry.key), keys.CACHE_INDEX], args)

    async def cache_hot(self, *, min_hits: int, expiring_before: float, now: float, limit: int = 100) -> list[CacheEntry]:
        members = await self.transport.run(CACHE_INDEX_RANGE, [keys.CACHE_INDEX], ["(" + num(now), num(expiring_before), CHUNK])
        hot: list[CacheEntry] = []
        for start in range(0, len(members or ()), 100):
            batch = members[start : start + 100]
            flat = await self.transport.run(CACHE_PEEK, [keys.cache_entry(m) for m in batch], [])
            for i in range(0, len(flat or ()), 5):
                position, body, expires, hits, meta = flat[i : i + 5]
                if int(hits) >= min_hits and float(expires) > now:
                    hot.append(CacheEntry(batch[int(position) - 1], body.encode(), float(expires), int(hits), orjson.loads(meta)))
        return hot[:limit]

    async def cache_purge(self) -> int:
        deleted = 0
        while True:
            members = await self.transport.run(CACHE_INDEX_RANGE, [keys.CACHE_INDEX], ["-inf", "+inf", CHUNK])
            if not members:
                return deleted
            entry_keys = [keys.cache_entry(m) for m in members]
            deleted += int(await self.transport.run(CACHE_DROP, [keys.CACHE_INDEX, *entry_keys], members))

    # ------------------------------------------------------------------ usage events and roll-ups

    async def append_events(self, events: Sequence[UsageEvent], *, writer: str = "", batch: int = 0) -> None:
        """Append ``events``. With ``writer`` and ``batch`` (numbered from 1, growing with every
        call of that writer, the same number when a call is repeated) the append is idempotent:
        a call whose reply was lost can be repeated without adding its events twice."""
        names = [keys.USAGE_EVENTS, keys.usage_writer(writer or "-")]
        for chunk, start in enumerate(range(0, len(events), CHUNK)):
            mark = batch * MARKS_PER_BATCH + chunk + 1 if writer and batch > 0 else 0
            lines = [event.dumps() for event in events[start : start + CHUNK]]
            await self.transport.run(EVENTS_APPEND, names, [EVENTS_MAX, mark, WRITER_TTL_MS, *lines])

    async def read_events(self, after: str, *, limit: int) -> list[tuple[str, UsageEvent]]:
        start = "(" + after if after else "-"
        flat = await self.transport.run(EVENTS_READ, [keys.USAGE_EVENTS], [start, limit]) or []
        return [(flat[i], UsageEvent.loads(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def rollup_cursor(self) -> str:
        return str(await self.transport.run(GET_CURSOR, [keys.USAGE_CURSOR], []) or "")

    async def apply_rollup(self, rollup: Rollup, *, expected: str, cursor: str) -> bool:
        buckets: dict[tuple[str, int], int] = {}
        triples: list[str] = []
        for (granularity, bucket, dims), increments in rollup.items():
            position = buckets.setdefault((granularity, bucket), len(buckets) + 1)
            for metric, value in increments.items():
                if value:
                    triples += [str(position), field_name(dims, metric), num(value)]
        bucket_keys = [keys.rollup_bucket(g, b) for g, b in buckets]
        # Each bucket lives RETENTION from its start, so older buckets expire first.
        now = time.time()
        ttls = [str(max(1000, int((b + RETENTION[g] - now) * 1000))) for g, b in buckets]
        args = [expected, cursor, str(len(buckets)), *ttls, *triples]
        return int(await self.transport.run(ROLLUP_APPLY, [keys.USAGE_CURSOR, keys.USAGE_EVENTS, *bucket_keys], args)) == 1

    async def rollup_rows(self, buckets: Sequence[tuple[str, int]]) -> list[tuple[Dims, dict[str, float]]]:
        rows: list[tuple[Dims, dict[str, float]]] = []
        for start in range(0, len(buckets), 100):
            batch = buckets[start : start + 100]
            flat = await self.transport.run(ROLLUP_READ, [keys.rollup_bucket(g, b) for g, b in batch], []) or []
            per_bucket: dict[tuple[str, Dims], dict[str, float]] = {}
            for i in range(0, len(flat), 3):
                dims, metric = parse_field(flat[i + 1])
                per_bucket.setdefault((flat[i], dims), {})[metric] = float(flat[i + 2])
            rows += [(dims, totals) for (_, dims), totals in per_bucket.items()]
        return rows

    # ------------------------------------------------------------------ compaction and history

    async def compact(self, key_ids: Sequence[str], *, window: float, history: float, now: float) -> int:
        args = (num(now - window), num(now - INFLIGHT_STALE), num(now - history))
        replies = await self.transport.run_many([(COMPACT_KEY, keys.provider_key(k), args) for k in key_ids]) if key_ids else []
        trimmed = await self.transport.run(CACHE_TRIM, [keys.CACHE_INDEX], [num(now)])
        return sum(int(r) for r in replies) + int(trimmed)

    async def key_history(self, key_ids: Sequence[str], *, since: float) -> dict[str, list[tuple[int, int, int]]]:
        replies = await self.transport.run_many([(READ_HASH, [keys.provider_key(k).history], []) for k in key_ids])
        out = {}
        for key_id, flat in zip(key_ids, replies):
            points: dict[int, list[int]] = {}
            for i in range(0, len(flat or ()), 2):
                kind, _, minute = flat[i].partition(":")
                if int(minute) + 60 > since:
                    points.setdefault(int(minute), [0, 0])[0 if kind == "r" else 1] = int(float(flat[i + 1]))
            out[key_id] = sorted((minute, r, t) for minute, (r, t) in points.items())
        return out

    async def footprint(self, key_ids: Sequence[str]) -> dict[str, int]:
        calls = [(KEY_FOOTPRINT, [(n := keys.provider_key(k)).window, n.inflight, n.history], []) for k in key_ids]
        replies = await self.transport.run_many(calls) if calls else []
        cache_entries, events = await self.transport.run_many([(CACHE_COUNT, [keys.CACHE_INDEX], []), (EVENTS_COUNT, [keys.USAGE_EVENTS], [])])
        return {
            "window_entries": sum(int(r[0]) for r in replies),
            "inflight": sum(int(r[1]) for r in replies),
            "history_points": sum(int(r[2]) for r in replies) // 2,
            "cache_entries": int(cache_entries),
            "events": int(events),
        }

    # ------------------------------------------------------------------ coordination

    async def claim(self, name: str, owner: str, *, ttl: float, now: float) -> str:
        return str(await self.transport.run(CLAIM, [keys.claim(name)], [owner, max(1, int(ttl * 1000))]))

    # ------------------------------------------------------------------ documents and counters

    async def doc_put(self, collection: str, doc_id: str, doc: dict, *, ttl: float | None = None, now: float) -> None:
        ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        names = [keys.doc(collection, doc_id), keys.doc_index(collection), keys.doc_seq(collection)]
        await self.transport.run(DOC_PUT, names, [doc_id, orjson.dumps(doc).decode(), ttl_ms])

    async def doc_get(self, collection: str, doc_id: str, *, now: float) -> dict | None:
        found = await self.transport.run(DOC_READ, [keys.doc(collection, doc_id)], [])
        return orjson.loads(found[0]) if found and found[0] else None

    async def doc_delete(self, collection: str, doc_id: str) -> bool:
        return int(await self.transport.run(DOC_DELETE, [keys.doc(collection, doc_id), keys.doc_index(collection)], [doc_id])) == 1

    async def doc_list(self, collection: str, *, now: float) -> list[dict]:
        ids = await self.transport.run(DOC_INDEX, [keys.doc_index(collection)], []) or []
        docs: list[dict] = []
        gone: list[str] = []
        for start in range(0, len(ids), CHUNK):
            batch = ids[start : start + CHUNK]
            found = await self.transport.run(DOC_READ, [keys.doc(collection, i) for i in batch], [])
            for doc_id, raw in zip(batch, found):
                if raw:
                    docs.append(orjson.loads(raw))
                else:
                    gone.append(doc_id)
        if gone:  # documents that expired by their TTL: drop them from the index too
            await self.transport.run(DOC_UNINDEX, [keys.doc_index(collection)], gone)
        return docs

    async def counters_add(
        self, name: str, deltas: dict[str, float], *, limits: dict[str, float] | None = None, ttl: float | None = None
    ) -> tuple[bool, dict[str, float]]:
        fields = list(deltas)
        args: list = [0 if ttl is None else max(1, int(ttl * 1000)), len(fields)]
        for field in fields:
            args += [field, num(deltas[field])]
        for field, limit in (limits or {}).items():
            args += [field, num(limit)]
        reply = await self.transport.run(COUNTERS_ADD, [keys.counters(name)], args)
        return int(reply[0]) == 1, {field: float(value) for field, value in zip(fields, reply[1:])}

    async def counters_get(self, name: str) -> dict[str, float]:
        flat = await self.transport.run(READ_HASH, [keys.counters(name)], []) or []
        return {flat[i]: float(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def counters_drop(self, name: str, fields: Sequence[str]) -> None:
        if fields:
            await self.transport.run(COUNTERS_DROP, [keys.counters(name)], list(fields))

    # ------------------------------------------------------------------ recent requests

    async def recent_push(self, items: Sequence[dict]) -> None:
        lines = [orjson.dumps(item).decode() for item in items[-RECENT_MAX:]]  # older ones would be cut at once
        if lines:
            await self.transport.run(RECENT_PUSH, [keys.RECENT], [RECENT_MAX, *lines])

    async def recent_list(self, limit: int) -> list[dict]:
        if limit <= 0:
            return []
        return [orjson.loads(line) for line in await self.transport.run(RECENT_LIST, [keys.RECENT], [limit]) or []]

    async def ping(self) -> bool:
        return await self.transport.ping()

    async def close(self) -> None:
        await self.transport.close()

