"""Ordering the (target, key) candidates of one request.

Every strategy returns the candidates best-first; the pool then tries to reserve on them in that
order, so a key without room is skipped, never waited on. Common rules, applied before the
strategy's own key:

1. Keys already tried by this request go last (they are used again only if nothing else can).
2. A lower ``Target.rank`` (earlier in an alias's fallback group) goes first.
3. With ``priority: cost``, the cheaper target goes first.
4. Keys cooling down go after keys that are not.

Then each algorithm:

- ``round_robin``: strict rotation. The n-th request over a set of candidates starts at
  position ``n mod size`` and walks the list from there.
- ``least_loaded``: fewest in-flight requests, then the lowest window use
  ``max(requests/req_per_min, tokens/tokens_per_min)``, ties broken by rotation.
- ``hybrid``: the lowest ``hybrid_score`` (below), ties broken by rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage.base import KeyState

if TYPE_CHECKING:
    from balancer.catalog import Target
    from balancer.keys import ProviderKey

# Weights of the hybrid score by ``policy.priority``; ``policy.hybrid_weights`` overrides them.
PRIORITY_WEIGHTS: dict[str, dict[str, float]] = {
    "balanced": {"req": 0.2, "token": 0.2, "inflight": 0.2, "error": 0.2, "latency": 0.1, "cost": 0.1},
    "cost": {"req": 0.1, "token": 0.1, "inflight": 0.1, "error": 0.1, "latency": 0.0, "cost": 0.6},
    "req": {"req": 0.6, "token": 0.05, "inflight": 0.15, "error": 0.15, "latency": 0.05, "cost": 0.0},
    "token": {"req": 0.05, "token": 0.6, "inflight": 0.15, "error": 0.15, "latency": 0.05, "cost": 0.0},
}

_IDLE = KeyState()


@dataclass(frozen=True, slots=True)
class Candidate:
    target: "Target"
    key: "ProviderKey"
    price: float = 0.0  # USD per input token plus per output token (the base tier); 0 when unknown

    @classmethod
    def of(cls, target: "Target", key: "ProviderKey") -> "Candidate":
        price = target.price
        return cls(target, key, 0.0 if price is None else price.input + price.output)


def window_use(candidate: Candidate, state: KeyState) -> float:
    """The fuller of the key's two windows, 0..1 (0 when unlimited)."""
    target = candidate.target
    req = state.requests / target.req_per_min if target.req_per_min else 0.0
    tok = state.tokens / target.tokens_per_min if target.tokens_per_min else 0.0
    return max(req, tok)


def hybrid_score(candidate: Candidate, state: KeyState, weights: dict[str, float], scale: "Scale") -> float:
    """Lower is better. Each term is normalised to 0..1 before weighting::

        score = w.req      * requests / req_per_min
              + w.token    * tokens / tokens_per_min
              + w.inflight * inflight / (1 + max inflight among the candidates)
              + w.error    * error rate (moving average of failures, 0..1)
              + w.latency  * latency / max latency among the candidates
              + w.cost     * price / max price among the candidates

    where price is ``Candidate.price`` (input + output per token, 0 when unknown), and a key with no
    latency measured yet counts as the mean of the measured ones (neither favoured nor shunned).
    """
    target = candidate.target
    score = 0.0
    if target.req_per_min:
        score += weights["req"] * state.requests / target.req_per_min
    if target.tokens_per_min:
        score += weights["token"] * state.tokens / target.tokens_per_min
    score += weights["inflight"] * state.inflight / (1 + scale.inflight)
    score += weights["error"] * state.error_rate
    if scale.latency:
        score += weights["latency"] * (state.latency or scale.mean_latency) / scale.latency
    if scale.price:
        score += weights["cost"] * candidate.price / scale.price
    return score


@dataclass(slots=True)  # built per request: a frozen dataclass's __init__ costs several times more
class Scale:
    inflight: int
    latency: float
    mean_latency: float
    price: float


def order(
    candidates: list[Candidate],
    *,
    algorithm: str,
    priority: str,
    weights: dict[str, float],
    states: dict[str, KeyState],
    turn: int,
    tried: frozenset[str] | set[str],
    now: float,
) -> list[Candidate]:
    """Return ``candidates`` best-first (see the module docstring for the rules)."""
    size = len(candidates)
    if size < 2:
        return list(candidates)
    by_cost = priority == "cost"
    keyed_states = [states.get(c.key.id, _IDLE) for c in candidates]
    if algorithm == "hybrid":
        measured = [s.latency for s in keyed_states if s.latency]
        scale = Scale(
            max([s.inflight for s in keyed_states]),
            max(measured) if measured else 0.0,
            sum(measured) / len(measured) if measured else 0.0,
            max([c.price for c in candidates]),
        )
    # One sort key per candidate, ending with its rotation (unique), then its index.
    keys = []
    for index, (candidate, state) in enumerate(zip(candidates, keyed_states)):
        common = (
            candidate.key.id in tried,
            candidate.target.rank,
            candidate.price if by_cost else 0.0,
            state.cooldown_until > now,
        )
        rotation = (index - turn) % size
        if algorithm == "round_robin":
            keys.append((*common, rotation, index))
        elif algorithm == "least_loaded":
            keys.append((*common, state.inflight, window_use(candidate, state), rotation, index))
        else:
            keys.append((*common, hybrid_score(candidate, state, weights, scale), rotation, index))
    keys.sort()
    return [candidates[key[-1]] for key in keys]
