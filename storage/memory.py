"""In-process runtime state: the embedded default for a single process.

Every method runs without awaiting in between its check and its write, so on one event loop each
call is atomic, which is what ``storage.base`` promises.
"""

from __future__ import annotations

import itertools
import time
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Sequence

import orjson

from storage.base import INFLIGHT_STALE, RECENT_MAX, CacheEntry, KeyState, Refusal, Reservation, WindowLimits, ewma
from storage.usage import RETENTION, Dims, Rollup, UsageEvent


_MAX_TOKENS = 2**31 - 1  # what one window slot holds


@dataclass(slots=True)
class _Key:
    """One provider key. Its window is two flat arrays, oldest first: ``times[head:]`` and
    ``sizes[head:]`` are the reservation times and token counts of the requests in the window.
    A busy key holds one request per reservation of the last minute, so each costs 12 bytes
    here instead of an object. A request's sequence number (its entry id) is ``base`` plus its
    index; expired ones are dropped from the front in amortized O(1), once they are an eighth
    of the arrays (so the arrays stay within 9/8 of the window)."""

    times: array = field(default_factory=lambda: array("d"))
    sizes: array = field(default_factory=lambda: array("i"))  # tokens of one request: below 2**31
    head: int = 0
    base: int = 0
    tokens: int = 0
    inflight: dict = field(default_factory=dict)  # sequence number -> reserved at, until settled
    cooldown_until: float = 0.0
    failures: int = 0
    error_rate: float = 0.0
    latency: float = 0.0
    history: dict = field(default_factory=dict)  # minute start -> [requests, tokens]

    @property
    def requests(self) -> int:
        return len(self.times) - self.head

    def append(self, at: float, tokens: int) -> int:
        tokens = min(tokens, _MAX_TOKENS)
        self.times.append(at)
        self.sizes.append(tokens)
        self.tokens += tokens
        return self.base + len(self.times) - 1

    def correct(self, seq: int, tokens: int) -> None:
        """Set a request's tokens to ``tokens`` if it is still in the window."""
        index = seq - self.base
        if self.head <= index < len(self.sizes):
            tokens = min(tokens, _MAX_TOKENS)
            self.tokens += tokens - self.sizes[index]
            self.sizes[index] = tokens

    def entries(self):
        """(reserved at, tokens) of the requests in the window, oldest first."""
        return zip(islice(self.times, self.head, None), islice(self.sizes, self.head, None))

    def expire(self, cutoff: float) -> int:
        times, sizes, head, end = self.times, self.sizes, self.head, len(self.times)
        start = head
        while head < end and times[head] <= cutoff:
            self.tokens -= sizes[head]
            head += 1
        removed = head - start
        if head > 1024 and head * 8 > end:  # drop the expired front once it is an eighth of the arrays
            del times[:head]
            del sizes[:head]
            self.base += head
            head = 0
        self.head = head
        return removed

    def live_inflight(self, now: float, *, thorough: bool = True) -> int:
        """In-flight requests, after dropping marks older than ``INFLIGHT_STALE``. Marks are kept in
        reservation order, so unless ``thorough`` only the oldest is looked at to decide on a scan."""
        inflight = self.inflight
        if not inflight or (not thorough and next(iter(inflight.values())) > now - INFLIGHT_STALE):
            return len(inflight)
        stale = [seq for seq, at in inflight.items() if at <= now - INFLIGHT_STALE]
        for seq in stale:
            del self.inflight[seq]
        return len(self.inflight)


def minute_of(at: float) -> int:
    return int(at // 60) * 60


def window_wait(entries, used_tokens: int, need: int, limit: int, window: float, now: float) -> float:
    """Seconds until enough of the oldest ``entries`` ((reserved at, tokens), oldest first) leave
    the window for ``need`` more tokens."""
    freed = 0
    for at, tokens in entries:
        freed += tokens
        if used_tokens - freed + need <= limit:
            return at + window - now
    return window


class MemoryStore:
    """Runtime state in this process's memory. Not shared: each process has its own limits."""

    name = "memory"
    shared = False

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self._cache: dict[str, CacheEntry] = {}
        self._events: deque[tuple[int, UsageEvent]] = deque()
        self._event_ids = itertools.count(1)
        self._cursor = ""
        self._rollups: dict[tuple[str, int], dict[Dims, dict[str, float]]] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._docs: dict[str, dict[str, tuple[dict, float | None]]] = {}  # collection -> id -> (doc, expires at)
        self._counters: dict[str, tuple[dict[str, float], float | None]] = {}  # name -> (fields, expires at)
        self._recent: deque[dict] = deque(maxlen=RECENT_MAX)  # oldest first

    def _key(self, key_id: str) -> _Key:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _Key()
        return state

    # ------------------------------------------------------------------ windows and health

    async def reserve(self, key_id: str, *, tokens: int, limits: WindowLimits, now: float) -> Reservation | Refusal:
        state = self._key(key_id)
        if state.cooldown_until > now:
            return Refusal(key_id, state.cooldown_until - now, "cooldown")
        state.expire(now - limits.window)
        if limits.requests is not None and state.requests >= limits.requests:
            return Refusal(key_id, state.times[state.head] + limits.window - now, "requests")
        if limits.tokens is not None:
            need = min(tokens, limits.tokens)  # a request bigger than the window waits for an empty one
            if state.tokens + need > limits.tokens:
                wait = window_wait(state.entries(), state.tokens, need, limits.tokens, limits.window, now)
                return Refusal(key_id, wait, "tokens")
        seq = state.append(now, tokens)
        state.inflight[seq] = now
        minute = state.history.setdefault(minute_of(now), [0, 0])
        minute[0] += 1
        minute[1] += tokens
        return Reservation(key_id, str(seq), tokens, now)

    async def settle(
        self, reservation: Reservation, *, tokens: int, failed: bool | None, latency: float | None, now: float
    ) -> int:
        state = self._key(reservation.key_id)
        seq = int(reservation.entry_id) if reservation.entry_id.isdigit() else -1  # not ours: health only
        if state.inflight.pop(seq, None) is not None:
            state.correct(seq, tokens)  # if still in the window: the real usage replaces the estimate
        minute = state.history.get(minute_of(reservation.at))
        if minute is not None:
            minute[1] += tokens - reservation.tokens
        if failed is True:
            state.failures += 1
            state.error_rate = ewma(state.error_rate, 1.0)
        elif failed is False:
            state.failures = 0
            state.error_rate = ewma(state.error_rate, 0.0)
        if latency is not None and failed is False:
            state.latency = latency if state.latency == 0.0 else ewma(state.latency, latency)
        return state.failures

    async def cool_down(self, key_id: str, until: float) -> None:
        state = self._key(key_id)
        state.cooldown_until = max(state.cooldown_until, until)

    async def reset_key(self, key_id: str) -> None:
        state = self._key(key_id)
        state.cooldown_until, state.failures = 0.0, 0

    async def key_states(self, key_ids: list[str], *, window: float, now: float) -> dict[str, KeyState]:
        states = {}
        for key_id in key_ids:
            state = self._key(key_id)
            state.expire(now - window)
            states[key_id] = KeyState(
                requests=state.requests,
                tokens=state.tokens,
                inflight=state.live_inflight(now, thorough=False),
                cooldown_until=state.cooldown_until,
                failures=state.failures,
                error_rate=state.error_rate,
                latency=state.latency,
            )
        return states

    def health_of(self, key_id: str) -> tuple[float, int, float, float]:
        """(cooldown until, failures, error rate, latency) of a key, for backends that persist health."""
        state = self._key(key_id)
        return state.cooldown_until, state.failures, state.error_rate, state.latency

    def restore_health(self, key_id: str, cooldown_until: float, failures: int, error_rate: float, latency: float) -> None:
        state = self._key(key_id)
        state.cooldown_until, state.failures, state.error_rate, state.latency = cooldown_until, failures, error_rate, latency

    # ------------------------------------------------------------------ response cache

    async def cache_get(self, key: str, *, now: float) -> CacheEntry | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._cache[key]
            return None
        entry = self._cache[key] = replace(entry, hits=entry.hits + 1)
        return entry

    async def cache_put(self, entry: CacheEntry, *, now: float) -> None:
        if entry.expires_at > now:
            self._cache[entry.key] = replace(entry, hits=0)

    async def cache_hot(self, *, min_hits: int, expiring_before: float, now: float, limit: int = 100) -> list[CacheEntry]:
        hot = [e for e in self._cache.values() if e.hits >= min_hits and now < e.expires_at <= expiring_before]
        hot.sort(key=lambda e: e.expires_at)
        return hot[:limit]

    async def cache_purge(self) -> int:
        count = len(self._cache)
        self._cache.clear()
        return count

    # ------------------------------------------------------------------ usage events and roll-ups

    async def append_events(self, events: Sequence[UsageEvent], *, writer: str = "", batch: int = 0) -> None:
        # In-process: a call cannot succeed without this process seeing it, so nothing is ever sent twice.
        for event in events:
            self._events.append((next(self._event_ids), event))

    async def read_events(self, after: str, *, limit: int) -> list[tuple[str, UsageEvent]]:
        if not self._events:
            return []
        # Sequence numbers are consecutive: the first event after ``after`` is found by arithmetic.
        skip = max(0, (int(after) if after else 0) - self._events[0][0] + 1)
        return [(str(seq), event) for seq, event in islice(self._events, skip, skip + limit)]

    async def rollup_cursor(self) -> str:
        return self._cursor

    async def apply_rollup(self, rollup: Rollup, *, expected: str, cursor: str) -> bool:
        if self._cursor != expected:
            return False
        for (granularity, bucket, dims), increments in rollup.items():
            totals = self._rollups.setdefault((granularity, bucket), {}).setdefault(dims, {})
            for name, value in increments.items():
                totals[name] = totals.get(name, 0) + value
        self._cursor = cursor
        done = int(cursor) if cursor else 0
        while self._events and self._events[0][0] <= done:
            self._events.popleft()
        return True

    async def rollup_rows(self, buckets: Sequence[tuple[str, int]]) -> list[tuple[Dims, dict[str, float]]]:
        rows = []
        for bucket in buckets:
            for dims, totals in self._rollups.get(bucket, {}).items():
                rows.append((dims, dict(totals)))
        return rows

    # ------------------------------------------------------------------ compaction and history

    async def compact(self, key_ids: Sequence[str], *, window: float, history: float, now: float) -> int:
        removed = 0
        oldest_minute = now - history
        for key_id in key_ids:
            state = self._keys.get(key_id)
            if state is None:
                continue
            removed += state.expire(now - window)
            before = len(state.inflight)
            state.live_inflight(now)
            removed += before - len(state.inflight)
            for minute in [m for m in state.history if m + 60 <= oldest_minute]:
                del state.history[minute]
                removed += 1
        # Keys nobody lists any more (removed from the config, or a client's window): once their
        # window is empty and nothing is in flight or resting, their state goes.
        listed = set(key_ids)
        for key_id in [k for k in self._keys if k not in listed]:
            state = self._keys[key_id]
            removed += state.expire(now - window)
            state.live_inflight(now)
            if not state.requests and not state.inflight and state.cooldown_until <= now:
                del self._keys[key_id]
                removed += 1
        for key in [k for k, e in self._cache.items() if e.expires_at <= now]:
            del self._cache[key]
            removed += 1
        for name in [n for n, (_, until) in self._claims.items() if until <= now]:
            del self._claims[name]
            removed += 1
        for docs in self._docs.values():
            for doc_id in [i for i, (_, until) in docs.items() if until is not None and until <= now]:
                del docs[doc_id]
                removed += 1
        for name in [n for n, (_, until) in self._counters.items() if until is not None and until <= now]:
            del self._counters[name]
            removed += 1
        for granularity, bucket in list(self._rollups):
            if bucket + RETENTION[granularity] <= now:
                del self._rollups[(granularity, bucket)]
                removed += 1
        return removed

    async def key_history(self, key_ids: Sequence[str], *, since: float) -> dict[str, list[tuple[int, int, int]]]:
        out = {}
        for key_id in key_ids:
            state = self._keys.get(key_id)
            points = state.history.items() if state else ()
            out[key_id] = sorted((minute, r, t) for minute, (r, t) in points if minute + 60 > since)
        return out

    async def footprint(self, key_ids: Sequence[str]) -> dict[str, int]:
        states = [self._keys[k] for k in key_ids if k in self._keys]
        return {
            "window_entries": sum(s.requests for s in states),
            "inflight": sum(len(s.inflight) for s in states),
            "history_points": sum(len(s.history) for s in states),
            "cache_entries": len(self._cache),
            "events": len(self._events),
            "claims": len(self._claims),
        }

    # ------------------------------------------------------------------ coordination

    async def claim(self, name: str, owner: str, *, ttl: float, now: float) -> str:
        held = self._claims.get(name)
        if held is not None and held[1] > now:
            return held[0]
        self._claims[name] = (owner, now + ttl)
        return owner

    # ------------------------------------------------------------------ documents and counters

    async def doc_put(self, collection: str, doc_id: str, doc: dict, *, ttl: float | None = None, now: float) -> None:
        docs = self._docs.setdefault(collection, {})
        docs.pop(doc_id, None)  # a replaced document counts as put now (dicts keep insertion order)
        docs[doc_id] = (orjson.loads(orjson.dumps(doc)), None if ttl is None else now + ttl)

    async def doc_get(self, collection: str, doc_id: str, *, now: float) -> dict | None:
        found = self._docs.get(collection, {}).get(doc_id)
        if found is None or (found[1] is not None and found[1] <= now):
            return None
        return orjson.loads(orjson.dumps(found[0]))  # a copy: callers may change what they read

    async def doc_delete(self, collection: str, doc_id: str) -> bool:
        return self._docs.get(collection, {}).pop(doc_id, None) is not None

    async def doc_list(self, collection: str, *, now: float) -> list[dict]:
        docs = self._docs.get(collection, {})
        for doc_id in [i for i, (_, until) in docs.items() if until is not None and until <= now]:
            del docs[doc_id]
        return [orjson.loads(orjson.dumps(doc)) for doc, _ in docs.values()]

    async def counters_add(
        self, name: str, deltas: dict[str, float], *, limits: dict[str, float] | None = None, ttl: float | None = None
    ) -> tuple[bool, dict[str, float]]:
        now = time.time()
        held = self._counters.get(name)
        if held is not None and held[1] is not None and held[1] <= now:
            held = None
        values = dict(held[0]) if held else {}
        after = {field: values.get(field, 0) + delta for field, delta in deltas.items()}
        if limits and any(after.get(field, values.get(field, 0)) > limit for field, limit in limits.items()):
            return False, {field: values.get(field, 0) for field in deltas}
        values.update(after)
        self._counters[name] = (values, None if ttl is None else now + ttl)
        return True, after

    async def counters_get(self, name: str) -> dict[str, float]:
        held = self._counters.get(name)
        if held is None or (held[1] is not None and held[1] <= time.time()):
            return {}
        return dict(held[0])

    async def counters_drop(self, name: str, fields: Sequence[str]) -> None:
        held = self._counters.get(name)
        if held is not None:
            for field_name in fields:
                held[0].pop(field_name, None)

    # ------------------------------------------------------------------ recent requests

    async def recent_push(self, items: Sequence[dict]) -> None:
        self._recent.extend(dict(item) for item in items)  # copies: callers may reuse theirs

    async def recent_list(self, limit: int) -> list[dict]:
        return [dict(item) for item in islice(reversed(self._recent), max(0, limit))]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._keys.clear()
