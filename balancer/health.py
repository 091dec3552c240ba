"""Outcomes of an upstream call and what they do to a key's health.

The balancer is told outcomes, never exceptions: ``release(lease, Outcome.RATE_LIMITED,
retry_after=20)``. ``cooldown_seconds`` turns an outcome into a rest period:

1. ``SUCCESS`` and ``CLIENT_ERROR`` leave the key usable (a bad request is not the key's fault).
2. ``RATE_LIMITED`` rests the key until the upstream's ``Retry-After``, or the configured default.
3. ``AUTH`` (the upstream rejected the key) rests it for the long ``auth`` period.
4. ``SERVER_ERROR``, ``OVERLOADED``, ``TIMEOUT`` and ``CONNECT`` count consecutive failures ``n``.
   A single failure does not rest the key (the request still moves to another key); repeated
   ones back off exponentially: ``min(error_base * 2**(n-2), error_max)`` for ``n >= 2``, and
   never shorter than a ``Retry-After`` the upstream sent. After the rest the key is probed by
   live traffic again; one success resets ``n``.
"""

from __future__ import annotations

from adapters.base import Outcome

# Consecutive failures that make a key "repeatedly failing" and start its backoff.
REPEATED = 2


def cooldown_seconds(outcome: Outcome, *, failures: int, retry_after: float | None, policy) -> float:
    """How long the key rests after ``outcome`` (0 = not at all). ``policy`` is a ``CooldownPolicy``."""
    if outcome is Outcome.RATE_LIMITED:
        return retry_after if retry_after is not None and retry_after > 0 else policy.rate_limited
    if outcome is Outcome.AUTH:
        return policy.auth
    if outcome.key_failed:
        backoff = min(policy.error_base * 2 ** (failures - REPEATED), policy.error_max) if failures >= REPEATED else 0.0
        return max(backoff, retry_after or 0.0)
    return 0.0
