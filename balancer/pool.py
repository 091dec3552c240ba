"""Key pools: leasing a provider key with room for a request, and taking the outcome back.

``Balancer.acquire(targets, ...)``:

1. Pair every target with every key of its provider (``Candidate``).
2. Order the pairs with the configured strategy (``balancer.strategies.order``) on the keys'
   states; a single pair needs no ordering and no state. With a per-process store the states
   are read from it each time. With a shared store (Redis) they are this process's snapshots:
   each reservation returns its key's state (same atomic step), a success adjusts it locally,
   any other outcome or refusal drops it, and snapshots older than ``STATE_MAX_AGE`` are read
   again with one ``key_states`` call, so other processes' traffic shows within that time
   without a state round trip per request.
3. Walk them in order and ask the store to reserve one request and the estimated tokens on the
   key's windows; the first success becomes the ``Lease``. The store's reserve is atomic, so
   the limits hold across processes sharing it.
4. If every key refused, raise ``Exhausted`` with the shortest ``retry_after`` among them.

``headroom`` (a fraction, 0 by default) makes a request yield to others: its reservation is
checked against every limit reduced by that fraction (``window_limits``), so work that can wait
(batch lines: ``batches.headroom``) never takes the last part of a window from live requests. A
key whose reduced window holds no request at all is refused (reason ``"headroom"``).

``Balancer.release(lease, outcome, ...)`` corrects the token window to the real usage, updates
key health, and starts a cooldown when ``balancer.health.cooldown_seconds`` asks for one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from balancer import strategies
from balancer.catalog import Target
from balancer.health import Outcome, cooldown_seconds
from balancer.keys import ProviderKey, provider_keys
from balancer.strategies import Candidate
from storage.base import WINDOW_SECONDS, KeyState, Refusal, Reservation, RuntimeStore, WindowLimits

# Shared stores: the oldest a key's snapshot may be when ranking (seconds). Reservations stay exact
# whatever the snapshot says: the store checks every limit atomically.
STATE_MAX_AGE = 1.0


@dataclass(slots=True)
class Lease:
    target: Target
    key: ProviderKey
    reservation: Reservation
    prompt_tokens: int  # the estimate reserved, split for accounting when usage is missing
    completion_tokens: int
    started: float


class Exhausted(Exception):
    """No candidate key has room now; one may in ``retry_after`` seconds.

    ``reasons`` maps each refusing key's label to ``"cooldown"``, ``"requests"`` or ``"tokens"``;
    ``unkeyed`` names the candidate providers that have no keys at all (then ``reasons`` is empty).
    """

    def __init__(self, retry_after: float, reasons: dict[str, str], unkeyed: tuple[str, ...] = ()):
        super().__init__(f"no capacity for {retry_after:.1f}s")
        self.retry_after = retry_after
        self.reasons = reasons
        self.unkeyed = unkeyed


def window_limits(target: Target, headroom: float = 0.0) -> WindowLimits | None:
    """The limits a reservation on ``target``'s keys is checked against: each configured limit
    less ``headroom`` of it, rounded down; None when that leaves no request or no token."""
    if not headroom:
        return WindowLimits(target.req_per_min, target.tokens_per_min)
    requests = None if target.req_per_min is None else math.floor(target.req_per_min * (1.0 - headroom))
    tokens = None if target.tokens_per_min is None else math.floor(target.tokens_per_min * (1.0 - headroom))
    if requests == 0 or tokens == 0:
        return None
    return WindowLimits(requests, tokens)


# Target lists remembered with their candidates; rotation counters outlive a forgotten list.
MAX_GROUPS = 4096


@dataclass(slots=True)
class _Group:
    targets: tuple[Target, ...]
    candidates: list[Candidate]
    key_ids: list[str]  # each key once, for reading states
    limits: dict[int, WindowLimits]  # id(target) -> its limits without headroom
    rotation: list[int]  # shared by every group over the same keys, so round-robin turns are per key set

    @property
    def turn(self) -> int:
        return self.rotation[0]

    @turn.setter
    def turn(self, value: int) -> None:
        self.rotation[0] = value


class Balancer:
    def __init__(self, settings, store: RuntimeStore, *, clock: Callable[[], float] = time.time) -> None:
        policy = settings.policy
        self.store = store
        self._clock = clock
        self._algorithm = policy.algorithm
        self._priority = policy.priority
        weights = dict(strategies.PRIORITY_WEIGHTS[policy.priority])
        if policy.hybrid_weights is not None:
            weights = policy.hybrid_weights.model_dump()
        self._weights = weights
        self._cooldown = policy.cooldown
        self._default_completion = policy.default_max_tokens
        self.keys: dict[str, tuple[ProviderKey, ...]] = {p.id: provider_keys(p) for p in settings.llm_providers}
        self._turns: dict[tuple, list[int]] = {}  # key ids of a candidate list -> its rotation counter
        self._groups: dict[tuple[int, ...], _Group] = {}
        self._shared = bool(getattr(store, "shared", False))
        self._snapshots: dict[str, tuple[float, KeyState]] = {}  # shared stores: key id -> (taken at, state)

    def completion_estimate(self, target: Target, requested: int | None) -> int:
        """Completion tokens to reserve: what the client asked for (0 for embeddings), else the
        provider's default ``max_tokens``, else its cap, else the policy default."""
        estimate = requested if requested is not None else (target.default_max_tokens or target.max_tokens or self._default_completion)
        return min(estimate, target.max_tokens) if target.max_tokens else estimate

    async def acquire(
        self,
        targets: Sequence[Target],
        *,
        prompt_tokens: int,
        max_tokens: int | None,
        tried: frozenset[str] | set[str] = frozenset(),
        headroom: float = 0.0,
    ) -> Lease:
        group = self._group(targets)
        candidates = group.candidates
        if not candidates:
            raise Exhausted(0.0, {}, tuple(dict.fromkeys(t.provider_id for t in targets)))
        now = self._clock()
        if len(candidates) == 1:  # nothing to rank: no state to read
            ordered = candidates
        else:
            turn = group.turn
            group.turn = turn + 1
            states = {}
            if self._algorithm != "round_robin":
                states = await self._states(group.key_ids, now)
            ordered = strategies.order(
                candidates,
                algorithm=self._algorithm,
                priority=self._priority,
                weights=self._weights,
                states=states,
                turn=turn,
                tried=tried,
                now=now,
            )
        refusals: dict[str, Refusal] = {}
        labels: dict[str, str] = {}
        for candidate in ordered:
            target, key = candidate.target, candidate.key
            if key.id in refusals:
                continue  # the same key reached through another target of its provider
            completion = self.completion_estimate(target, max_tokens)
            limits = group.limits[id(target)] if not headroom else window_limits(target, headroom)
            if limits is None:  # the headroom leaves this key nothing: it waits for live traffic's sake
                refusals[key.id] = Refusal(key.id, WINDOW_SECONDS, "headroom")
                labels[key.id] = key.label
                continue
            result = await self.store.reserve(key.id, tokens=prompt_tokens + completion, limits=limits, now=now)
            if isinstance(result, Reservation):
                if self._shared:
                    if result.state is not None:
                        self._snapshots[key.id] = (now, result.state)
                    else:
                        self._snapshots.pop(key.id, None)
                return Lease(target, key, result, prompt_tokens, completion, now)
            self._snapshots.pop(key.id, None)
            refusals[key.id] = result
            labels[key.id] = key.label
        raise Exhausted(
            min(r.retry_after for r in refusals.values()),
            {labels[key_id]: r.reason for key_id, r in refusals.items()},
        )

    def _group(self, targets: Sequence[Target]) -> "_Group":
        """The candidates of ``targets`` and their rotation, made once per target list (the
        catalog hands out the same ``Target`` objects for a model every time)."""
        key = tuple(map(id, targets))  # the group holds its targets, so these ids stay theirs
        group = self._groups.get(key)
        if group is None:
            candidates = [Candidate.of(t, k) for t in targets for k in self.keys.get(t.provider_id, ())]
            group = _Group(
                tuple(targets),
                candidates,
                list(dict.fromkeys(c.key.id for c in candidates)),
                {id(t): window_limits(t) for t in targets},
                self._turns.setdefault(tuple(c.key.id for c in candidates), [0]),
            )
            if len(self._groups) >= MAX_GROUPS:  # unlisted provider:model names make new targets: stay bounded
                self._groups.clear()
            self._groups[key] = group
        return group

    async def release(
        self,
        lease: Lease,
        outcome: Outcome,
        *,
        tokens: int | None = None,
        retry_after: float | None = None,
        latency: float | None = None,
    ) -> float:
        """Settle the lease. ``tokens`` is the real usage (success); failures give their tokens back.

        Returns the cooldown started on the key, in seconds (0 for none).
        """
        now = self._clock()
        used = tokens if tokens is not None else (lease.reservation.tokens if outcome is Outcome.SUCCESS else 0)
        failures = await self.store.settle(
            lease.reservation, tokens=used, failed=outcome.key_failed, latency=latency, now=now
        )
        rest = cooldown_seconds(outcome, failures=failures, retry_after=retry_after, policy=self._cooldown)
        if self._shared:
            self._note_settled(lease, outcome, used, failures)
        if rest > 0:
            await self.store.cool_down(lease.key.id, now + rest)
        return rest

    async def _states(self, key_ids: list[str], now: float) -> dict[str, KeyState]:
        """The keys' states for ranking (see the module docstring)."""
        if not self._shared:
            return await self.store.key_states(key_ids, window=60.0, now=now)
        snapshots = self._snapshots
        states = {}
        for key_id in key_ids:
            seen = snapshots.get(key_id)
            if seen is None or not 0 <= now - seen[0] <= STATE_MAX_AGE:
                fresh = await self.store.key_states(key_ids, window=60.0, now=now)
                for fresh_id, state in fresh.items():
                    snapshots[fresh_id] = (now, state)
                return fresh
            states[key_id] = seen[1]
        return states

    def _note_settled(self, lease: Lease, outcome: Outcome, used: int, failures: int) -> None:
        """Keep a success in the key's snapshot; anything else makes it be read again."""
        seen = self._snapshots.get(lease.key.id)
        if seen is None:
            return
        if outcome is not Outcome.SUCCESS:
            del self._snapshots[lease.key.id]
            return
        state = seen[1]
        state.inflight = max(0, state.inflight - 1)
        state.tokens += used - lease.reservation.tokens
        state.failures = failures
