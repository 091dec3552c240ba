"""The runtime-state interface every backend implements.

A backend owns the counters the balancer decides on: per provider key a sliding window of
requests and tokens, an in-flight count and health (cooldown, consecutive failures, error and
latency averages). Each call is one atomic step, so a networked backend can do it in one round
trip (Redis: one Lua script per call, all keys of one provider key in one hash slot).

Contract of the window calls:

1. ``reserve(key_id, tokens=T, limits=L, now=t)`` succeeds only if, counting every entry newer
   than ``t - L.window``, the key has fewer than ``L.requests`` requests, and its tokens plus
   ``T`` fit in ``L.tokens``, and it is not cooling down. On success it records one entry of
   ``T`` tokens, adds one in-flight request and returns a ``Reservation``. Otherwise it records
   nothing and returns a ``Refusal`` whose ``retry_after`` is the time until the reservation
   could succeed (cooldown end, or the moment enough old entries leave the window). A backend
   may attach the key's state right after the reservation (``Reservation.state``, read in the
   same atomic step), so a balancer can rank keys without a ``key_states`` call per request.
2. ``settle(reservation, tokens=N, failed=..., latency=..., now=t)`` replaces the entry's token
   count by ``N`` (the real usage), removes the in-flight request and updates health. It returns
   the key's consecutive failure count after this outcome.
3. ``cool_down(key_id, until)`` keeps the key from being reserved before ``until``.
   ``reset_key(key_id)`` ends a cooldown now and sets the consecutive failure count to 0 (an
   operator's "this key is fine again"); windows, in-flight counts and the error and latency
   averages are left as they are.

Every reservation also counts into the key's per-minute history (requests and tokens of the
minute it was made in, corrected by ``settle``), kept for dashboards by ``compact``.

Contract of the other state (issue 4: many processes, one gateway):

4. Response cache. ``cache_put(entry)`` stores an entry until ``entry.expires_at`` with a hit
   count of 0 (replacing any entry under the same key). ``cache_get(key)`` returns the live entry
   and counts one hit (the returned ``hits`` includes it), or None. ``cache_hot`` lists live
   entries with at least ``min_hits`` hits that expire before ``expiring_before`` (for warming).
   ``cache_purge`` deletes every entry and says how many.
5. Usage events. ``append_events`` adds events in order; each gets a cursor (an opaque string
   that orders as the events do). Given a ``writer`` id and a ``batch`` number (growing with
   each call of that writer), a networked backend appends a batch at most once, so a call whose
   reply was lost can be repeated safely. ``read_events(after)`` returns up to ``limit`` events after a
   cursor (``""`` = from the start). ``apply_rollup(rollup, expected, cursor)`` atomically adds
   the increments and moves the roll-up cursor from ``expected`` to ``cursor``, or does nothing
   and returns False if the stored cursor is not ``expected`` (another folder got there first).
   So a fold that crashes halfway is redone from the old cursor, and none is applied twice.
   Events up to the cursor may then be deleted. ``rollup_rows(buckets)`` returns the totals of
   the given ``(granularity, bucket start)`` buckets as ``(dims, totals)`` rows.
6. ``compact(key_ids, window, history, now)`` removes expired window entries (also of keys that
   went idle), per-minute history older than ``history`` seconds, in-flight marks older than
   ``INFLIGHT_STALE`` (left by a process that died mid-request), expired cache entries and
   claims, and old roll-ups. It returns how many items it removed. ``footprint`` counts what is
   stored, so tests can show it stays flat.
7. ``claim(name, owner, ttl)`` sets ``name`` to ``owner`` if nobody holds it (for ``ttl``
   seconds) and returns whoever holds it afterwards: the one primitive behind "a deferred request
   runs at most once" and "a cancelled request never runs".

Contract of the record-keeping calls (clients, stored responses, files and batches):

8. Documents. ``doc_put(collection, doc_id, doc, ttl=None, now=t)`` stores a JSON-able dict,
   replacing any document under the same id; with ``ttl`` it is gone ``ttl`` seconds later.
   ``doc_get`` returns the live document or None; ``doc_delete`` says whether one was there;
   ``doc_list(collection, now=t)`` returns every live document of the collection, oldest put first
   (collections hold a gateway's clients, batches, files: hundreds to thousands, not millions).
9. Counters. ``counters_add(name, deltas, limits=None, ttl=None)`` adds each delta to its field of
   the named counter set atomically, and returns ``(applied, values)`` with the fields' values
   afterwards. With ``limits`` (field -> maximum) nothing is added unless every limited field
   stays at or below its maximum after the addition; ``applied`` is then False and ``values`` are
   the unchanged current values. ``counters_get(name)`` reads every field; ``counters_drop(name,
   fields)`` deletes fields. With ``ttl`` the whole set expires ``ttl`` seconds after the last
   addition. This is the check-and-reserve behind USD budgets and the progress of batches.

Contract of the dashboard's record of recent requests:

10. Recent requests. ``recent_push(items)`` adds JSON-able dicts (the last of ``items`` is the
    newest); the store keeps only the newest ``RECENT_MAX`` of everything pushed, by any process.
    ``recent_list(limit)`` returns up to ``limit`` of them, newest first, as equal dicts. It is a
    sample for the admin overview (rates and latency percentiles of the last minute across
    processes), not a ledger: usage events are the ledger.

Timestamps are seconds from ``time.time()``; the caller passes ``now`` so tests and the
balancer agree on one clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from storage.usage import Dims, Rollup, UsageEvent

WINDOW_SECONDS = 60.0
# Per-minute history of each key's windows is kept this long (seconds) by compaction.
HISTORY_SECONDS = 3 * 3600.0
# An in-flight mark older than this belongs to a process that died mid-request; it stops counting.
INFLIGHT_STALE = 900.0
# Recent request records kept by every backend (contract 10): newest first, the rest dropped.
RECENT_MAX = 1000


class StoreUnavailable(ConnectionError):
    """The backend could not be reached or answered with a server-side failure. Networked
    backends raise it; ``ResilientStore`` raises it for the calls memory cannot answer."""


@dataclass(frozen=True, slots=True)
class WindowLimits:
    """Per-key limits; ``None`` is unlimited."""

    requests: int | None = None
    tokens: int | None = None
    window: float = WINDOW_SECONDS


@dataclass(frozen=True, slots=True)
class Reservation:
    key_id: str
    entry_id: str
    tokens: int
    at: float
    state: KeyState | None = field(default=None, compare=False, repr=False)  # the key just after, if the backend says


@dataclass(frozen=True, slots=True)
class Refusal:
    key_id: str
    retry_after: float
    reason: str  # "cooldown" | "requests" | "tokens"


@dataclass(slots=True)
class KeyState:
    """A snapshot of one key, for ranking. May be slightly stale on networked backends."""

    requests: int = 0
    tokens: int = 0
    inflight: int = 0
    cooldown_until: float = 0.0
    failures: int = 0
    error_rate: float = 0.0
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached answer: the chat.completion ``body`` and ``meta`` (who served it, usage, cost, and
    the request itself so warming can replay it)."""

    key: str
    body: bytes
    expires_at: float
    hits: int = 0
    meta: dict = field(default_factory=dict)


class RuntimeStore(Protocol):
    """What ``balancer``, the cache, accounting and the jobs need from a backend. See the module
    docstring for the contract. ``shared`` is True when several processes see the same state."""

    name: str
    shared: bool

    async def reserve(self, key_id: str, *, tokens: int, limits: WindowLimits, now: float) -> Reservation | Refusal: ...

    async def settle(
        self, reservation: Reservation, *, tokens: int, failed: bool | None, latency: float | None, now: float
    ) -> int: ...

    async def cool_down(self, key_id: str, until: float) -> None: ...

    async def reset_key(self, key_id: str) -> None: ...

    async def key_states(self, key_ids: list[str], *, window: float, now: float) -> dict[str, KeyState]: ...

    async def cache_get(self, key: str, *, now: float) -> CacheEntry | None: ...

    async def cache_put(self, entry: CacheEntry, *, now: float) -> None: ...

    async def cache_hot(self, *, min_hits: int, expiring_before: float, now: float, limit: int = 100) -> list[CacheEntry]: ...

    async def cache_purge(self) -> int: ...

    async def append_events(self, events: Sequence[UsageEvent], *, writer: str = "", batch: int = 0) -> None: ...

    async def read_events(self, after: str, *, limit: int) -> list[tuple[str, UsageEvent]]: ...

    async def rollup_cursor(self) -> str: ...

    async def apply_rollup(self, rollup: Rollup, *, expected: str, cursor: str) -> bool: ...

    async def rollup_rows(self, buckets: Sequence[tuple[str, int]]) -> list[tuple[Dims, dict[str, float]]]: ...

    async def compact(self, key_ids: Sequence[str], *, window: float, history: float, now: float) -> int: ...

    async def key_history(self, key_ids: Sequence[str], *, since: float) -> dict[str, list[tuple[int, int, int]]]: ...

    async def footprint(self, key_ids: Sequence[str]) -> dict[str, int]: ...

    async def claim(self, name: str, owner: str, *, ttl: float, now: float) -> str: ...

    async def doc_put(self, collection: str, doc_id: str, doc: dict, *, ttl: float | None = None, now: float) -> None: ...

    async def doc_get(self, collection: str, doc_id: str, *, now: float) -> dict | None: ...

    async def doc_delete(self, collection: str, doc_id: str) -> bool: ...

    async def doc_list(self, collection: str, *, now: float) -> list[dict]: ...

    async def counters_add(
        self, name: str, deltas: dict[str, float], *, limits: dict[str, float] | None = None, ttl: float | None = None
    ) -> tuple[bool, dict[str, float]]: ...

    async def counters_get(self, name: str) -> dict[str, float]: ...

    async def counters_drop(self, name: str, fields: Sequence[str]) -> None: ...

    async def recent_push(self, items: Sequence[dict]) -> None: ...

    async def recent_list(self, limit: int) -> list[dict]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


# Health averages decay with this weight per observation (exponentially weighted).
EWMA_ALPHA = 0.2


def ewma(previous: float, sample: float, alpha: float = EWMA_ALPHA) -> float:
    return previous + alpha * (sample - previous)
