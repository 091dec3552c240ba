"""In-process runtime state: the embedded default for a single process.

Every method runs without awaiting in between its check and its write, so on one event loop each
call is atomic, which is what ``storage.base`` promises.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from storage.base import KeyState, Refusal, Reservation, WindowLimits, ewma


@dataclass(slots=True)
class _Entry:
    at: float
    tokens: int
    entry_id: str


@dataclass(slots=True)
class _Key:
    entries: deque = field(default_factory=deque)
    by_id: dict = field(default_factory=dict)
    tokens: int = 0
    inflight: int = 0
    cooldown_until: float = 0.0
    failures: int = 0
    error_rate: float = 0.0
    latency: float = 0.0

    def expire(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0].at <= cutoff:
            entry = entries.popleft()
            self.tokens -= entry.tokens
            del self.by_id[entry.entry_id]


def window_wait(entries, used_tokens: int, need: int, limit: int, window: float, now: float) -> float:
    """Seconds until enough of the oldest ``entries`` leave the window for ``need`` more tokens."""
    freed = 0
    for entry in entries:
        freed += entry.tokens
        if used_tokens - freed + need <= limit:
            return entry.at + window - now
    return window


class MemoryStore:
    """Runtime state in this process's memory. Not shared: each process has its own limits."""

    name = "memory"

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self._ids = itertools.count(1)

    def _key(self, key_id: str) -> _Key:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _Key()
        return state

    async def reserve(self, key_id: str, *, tokens: int, limits: WindowLimits, now: float) -> Reservation | Refusal:
        state = self._key(key_id)
        if state.cooldown_until > now:
            return Refusal(key_id, state.cooldown_until - now, "cooldown")
        state.expire(now - limits.window)
        if limits.requests is not None and len(state.entries) >= limits.requests:
            return Refusal(key_id, state.entries[0].at + limits.window - now, "requests")
        if limits.tokens is not None:
            need = min(tokens, limits.tokens)  # a request bigger than the window waits for an empty one
            if state.tokens + need > limits.tokens:
                wait = window_wait(state.entries, state.tokens, need, limits.tokens, limits.window, now)
                return Refusal(key_id, wait, "tokens")
        entry = _Entry(now, tokens, str(next(self._ids)))
        state.entries.append(entry)
        state.by_id[entry.entry_id] = entry
        state.tokens += tokens
        state.inflight += 1
        return Reservation(key_id, entry.entry_id, tokens, now)

    async def settle(
        self, reservation: Reservation, *, tokens: int, failed: bool | None, latency: float | None, now: float
    ) -> int:
        state = self._key(reservation.key_id)
        state.inflight = max(0, state.inflight - 1)
        entry = state.by_id.get(reservation.entry_id)
        if entry is not None:  # still inside the window: correct the estimate to the real count
            state.tokens += tokens - entry.tokens
            entry.tokens = tokens
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

    async def key_states(self, key_ids: list[str], *, window: float, now: float) -> dict[str, KeyState]:
        states = {}
        for key_id in key_ids:
            state = self._key(key_id)
            state.expire(now - window)
            states[key_id] = KeyState(
                requests=len(state.entries),
                tokens=state.tokens,
                inflight=state.inflight,
                cooldown_until=state.cooldown_until,
                failures=state.failures,
                error_rate=state.error_rate,
                latency=state.latency,
            )
        return states

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._keys.clear()
