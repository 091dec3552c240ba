"""Keeping the gateway up when its networked store is not: Redis (or webdis) down means degraded,
never failed.

``ResilientStore(primary)`` forwards every call to ``primary`` with a hard time bound. When a call
fails or times out, the store turns *degraded*:

1. It logs one warning, and calls ``on_state(True)`` (the app counts the fallback in a metric).
2. Calls on the request path (windows, health, cache) are answered by a per-process
   ``MemoryStore`` from then on, so limits hold per process, not across processes; requests
   never wait on the dead store. Usage events are buffered (up to ``max_pending`` of them).
3. Background calls (roll-ups, compaction, warming, cache purge, history), job claims,
   documents and counters (clients, budgets, stored responses, batches: things that exist once)
   and key resets raise ``StoreUnavailable``: jobs retry on their next run, request-path callers
   decide (a claim must never be granted by two stores at once). Recent request records (a
   sample for the dashboard, not a ledger) go to and come from the per-process memory instead,
   so the dashboard shows this process's traffic while the store is away.
4. A probe pings the primary every ``probe_interval`` seconds. When it answers, the buffered
   events are written to it, the store turns healthy again (one log line, ``on_state(False)``)
   and calls go to the primary again.

Usage events are never counted twice. A batch that failed may still have been appended (Redis
ran it, then the reply was lost to a timeout or a shutdown), so batches go out one at a time,
numbered, under this store's writer id, and a batch sent again keeps its number: the primary
skips a number it has already appended (``RedisStore.append_events``).

A reservation made in memory carries the ``local:`` prefix in its entry id, so it is settled in
memory even if the primary came back meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from dataclasses import replace
from typing import Any, Callable, Sequence

from loguru import logger

from storage.base import Reservation, StoreUnavailable
from storage.memory import MemoryStore
from storage.redis_transport import bounded
from storage.usage import UsageEvent

LOCAL = "local:"
REMOTE = "remote:"


class ResilientStore:
    def __init__(
        self,
        primary,
        *,
        timeout: float,
        bulk_timeout: float = 10.0,
        probe_interval: float = 1.0,
        max_pending: int = 100_000,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = MemoryStore()
        self.name = primary.name
        self.shared = primary.shared
        self.timeout = timeout
        self.bulk_timeout = max(bulk_timeout, timeout)
        self.probe_interval = probe_interval
        self.on_state = on_state
        self.degraded = False
        self.fallbacks = 0
        self.max_pending = max_pending
        self._pending: deque[tuple[int, list[UsageEvent]]] = deque()  # (batch number, events), oldest first
        self._pending_events = 0
        self._writer = secrets.token_hex(6)  # this store's id for idempotent appends
        self._batches = itertools.count(1)
        self._appending = asyncio.Lock()  # batches go out one at a time, in number order
        # Calls the primary bounds by itself within ``timeout`` (see ``RedisStore.self_bounded``).
        bound = getattr(primary, "self_bound", None)
        self._self_bounded = getattr(primary, "self_bounded", frozenset()) if bound is not None and bound <= timeout else frozenset()
        self._probe: asyncio.Task | None = None

    # ------------------------------------------------------------------ state changes

    def _degrade(self, method: str, error: BaseException) -> None:
        if self.degraded:
            return
        self.degraded = True
        self.fallbacks += 1
        logger.warning(
            "runtime store unreachable: serving from per-process memory state until it is back",
            store=self.name,
            call=method,
            error=type(error).__name__,
        )
        if self.on_state:
            self.on_state(True)
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        while self.degraded:
            await asyncio.sleep(self.probe_interval)
            try:
                if not await bounded(self.primary.ping(), self.timeout * 4):
                    continue
                async with self._appending:
                    while self._pending:  # replay the batches buffered while degraded, oldest first, same numbers
                        number, events = self._pending[0]
                        await bounded(self.primary.append_events(events, writer=self._writer, batch=number), self.bulk_timeout)
                        self._pending.popleft()
                        self._pending_events -= len(events)
                    self.degraded = False  # still holding the lock: no batch can be buffered behind the replay
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            logger.info("runtime store reachable again: shared state restored", store=self.name)
            if self.on_state:
                self.on_state(False)

    # ------------------------------------------------------------------ call helpers

    async def _primary(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            if timeout is None and method in self._self_bounded:
                return await getattr(self.primary, method)(*args, **kwargs)
            return await bounded(getattr(self.primary, method)(*args, **kwargs), timeout or self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._degrade(method, error)
            raise StoreUnavailable(f"runtime store {self.name} unavailable") from None

    async def _either(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The primary's answer, or the memory fallback's when degraded or failing."""
        if not self.degraded:
            try:
                return await self._primary(method, *args, **kwargs)
            except StoreUnavailable:
                pass
        return await getattr(self.fallback, method)(*args, **kwargs)

    async def _strict(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Background calls: the primary or ``StoreUnavailable`` (memory has nothing to offer)."""
        if self.degraded:
            raise StoreUnavailable(f"runtime store {self.name} unavailable (degraded)")
        return await self._primary(method, *args, timeout=self.bulk_timeout, **kwargs)

    # ------------------------------------------------------------------ request path: fall back

    async def reserve(self, key_id: str, **kwargs: Any):
        if not self.degraded:
            try:
                return await self._primary("reserve", key_id, **kwargs)
            except StoreUnavailable:
                pass
        result = await self.fallback.reserve(key_id, **kwargs)
        return replace(result, entry_id=LOCAL + result.entry_id) if isinstance(result, Reservation) else result

    async def settle(self, reservation: Reservation, **kwargs: Any) -> int:
        if reservation.entry_id.startswith(LOCAL):
            return await self.fallback.settle(replace(reservation, entry_id=reservation.entry_id[len(LOCAL) :]), **kwargs)
        if not self.degraded:
            try:
                return await self._primary("settle", reservation, **kwargs)
            except StoreUnavailable:
                pass
        # A primary reservation settled while degraded: keep the key's health locally.
        return await self.fallback.settle(replace(reservation, entry_id=REMOTE + reservation.entry_id), **kwargs)

    async def cool_down(self, key_id: str, until: float) -> None:
        await self.fallback.cool_down(key_id, until)  # mirrored, so a fallback knows current cooldowns
        if not self.degraded:
            try:
                await self._primary("cool_down", key_id, until)
            except StoreUnavailable:
                pass

    async def reset_key(self, key_id: str) -> None:
        """Reset in memory too (a fallback must not keep a cooldown the operator lifted), then in
        the shared store, which must answer: ``StoreUnavailable`` otherwise."""
        await self.fallback.reset_key(key_id)
        await self._shared("reset_key", key_id)

    async def key_states(self, key_ids: list[str], **kwargs: Any):
        return await self._either("key_states", key_ids, **kwargs)

    async def cache_get(self, key: str, **kwargs: Any):
        return await self._either("cache_get", key, **kwargs)

    async def cache_put(self, entry, **kwargs: Any) -> None:
        return await self._either("cache_put", entry, **kwargs)

    async def claim(self, name: str, owner: str, **kwargs: Any) -> str:
        """Claims decide who runs a job, so only the shared store can grant one: while it is
        unreachable this raises ``StoreUnavailable`` rather than let two processes both win."""
        if self.degraded:
            raise StoreUnavailable(f"runtime store {self.name} unavailable (degraded)")
        return await self._primary("claim", name, owner, **kwargs)

    async def append_events(self, events: Sequence[UsageEvent], **_: Any) -> None:
        if not events:
            return
        async with self._appending:
            number = next(self._batches)
            if not self.degraded:
                try:
                    return await self._primary("append_events", events, writer=self._writer, batch=number)
                except StoreUnavailable:
                    pass
            self._pending.append((number, list(events)))
            self._pending_events += len(events)
            while self._pending_events > self.max_pending:  # a long outage: the oldest batches go
                _, dropped = self._pending.popleft()
                self._pending_events -= len(dropped)

    @property
    def pending_events(self) -> int:
        return self._pending_events

    # ------------------------------------------------------------------ background: primary only

    async def cache_hot(self, **kwargs: Any):
        return await self._strict("cache_hot", **kwargs)

    async def cache_purge(self) -> int:
        return await self._strict("cache_purge")

    async def read_events(self, after: str, **kwargs: Any):
        return await self._strict("read_events", after, **kwargs)

    async def rollup_cursor(self) -> str:
        return await self._strict("rollup_cursor")

    async def apply_rollup(self, rollup, **kwargs: Any) -> bool:
        return await self._strict("apply_rollup", rollup, **kwargs)

    async def rollup_rows(self, buckets):
        return await self._strict("rollup_rows", buckets)

    async def compact(self, key_ids, **kwargs: Any) -> int:
        removed = await self.fallback.compact(key_ids, **kwargs)  # the fallback must stay flat too
        return removed + await self._strict("compact", key_ids, **kwargs)

    async def key_history(self, key_ids, **kwargs: Any):
        return await self._strict("key_history", key_ids, **kwargs)

    async def footprint(self, key_ids):
        return await self._strict("footprint", key_ids)

    # ------------------------------------------------------------------ records: primary only

    async def _shared(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Documents and counters exist once, in the shared store: while it is unreachable they
        raise ``StoreUnavailable`` (the caller decides what that means), within ``timeout``."""
        if self.degraded:
            raise StoreUnavailable(f"runtime store {self.name} unavailable (degraded)")
        return await self._primary(method, *args, **kwargs)

    async def doc_put(self, collection: str, doc_id: str, doc: dict, **kwargs: Any) -> None:
        return await self._shared("doc_put", collection, doc_id, doc, **kwargs)

    async def doc_get(self, collection: str, doc_id: str, **kwargs: Any):
        return await self._shared("doc_get", collection, doc_id, **kwargs)

    async def doc_delete(self, collection: str, doc_id: str) -> bool:
        return await self._shared("doc_delete", collection, doc_id)

    async def doc_list(self, collection: str, **kwargs: Any):
        return await self._strict("doc_list", collection, **kwargs)

    async def counters_add(self, name: str, deltas: dict, **kwargs: Any):
        return await self._shared("counters_add", name, deltas, **kwargs)

    async def counters_get(self, name: str):
        return await self._shared("counters_get", name)

    async def counters_drop(self, name: str, fields) -> None:
        return await self._shared("counters_drop", name, fields)

    # ------------------------------------------------------------------ recent requests: memory while degraded

    async def recent_push(self, items: Sequence[dict]) -> None:
        """Never raises: a record that cannot reach the shared list is kept in this process only."""
        if not self.degraded:
            try:
                return await self._primary("recent_push", items, timeout=self.bulk_timeout)
            except StoreUnavailable:
                pass
        await self.fallback.recent_push(items)

    async def recent_list(self, limit: int) -> list[dict]:
        if not self.degraded:
            try:
                return await self._primary("recent_list", limit, timeout=self.bulk_timeout)
            except StoreUnavailable:
                pass
        return await self.fallback.recent_list(limit)

    # ------------------------------------------------------------------ lifecycle

    async def ping(self) -> bool:
        if self.degraded:
            return False
        try:
            return bool(await self._primary("ping"))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self.primary.close()
        await self.fallback.close()
