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
   could succeed (cooldown end, or the moment enough old entries leave the window).
2. ``settle(reservation, tokens=N, failed=..., latency=..., now=t)`` replaces the entry's token
   count by ``N`` (the real usage), removes the in-flight request and updates health. It returns
   the key's consecutive failure count after this outcome.
3. ``cool_down(key_id, until)`` keeps the key from being reserved before ``until``.

Timestamps are seconds from ``time.time()``; the caller passes ``now`` so tests and the
balancer agree on one clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60.0


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


class RuntimeStore(Protocol):
    """What ``balancer`` needs from a backend. See the module docstring for the contract."""

    name: str

    async def reserve(self, key_id: str, *, tokens: int, limits: WindowLimits, now: float) -> Reservation | Refusal: ...

    async def settle(
        self, reservation: Reservation, *, tokens: int, failed: bool | None, latency: float | None, now: float
    ) -> int: ...

    async def cool_down(self, key_id: str, until: float) -> None: ...

    async def key_states(self, key_ids: list[str], *, window: float, now: float) -> dict[str, KeyState]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


# Health averages decay with this weight per observation (exponentially weighted).
EWMA_ALPHA = 0.2


def ewma(previous: float, sample: float, alpha: float = EWMA_ALPHA) -> float:
    return previous + alpha * (sample - previous)
