"""``headroom``: a request that may wait (a batch line) reserves against every key limit reduced by
that fraction, so the rest of each window stays for live requests. Balancer and memory store,
driven directly."""

from __future__ import annotations

import asyncio

import pytest

from balancer.pool import Exhausted
from test_pool import everyone, make, p


def fill(balancer, targets, *, headroom: float, tokens: int = 1) -> int:
    """How many requests of ``tokens`` (prompt, no completion) get a lease before ``Exhausted``."""

    async def scenario():
        count = 0
        while True:
            try:
                await balancer.acquire(targets, prompt_tokens=tokens, max_tokens=0, headroom=headroom)
            except Exhausted as refused:
                return count, refused
            count += 1

    return asyncio.run(scenario())


def test_a_request_with_headroom_leaves_that_share_of_the_request_window_to_others():
    balancer, catalog, _ = make([p("a", ["k1", "k2"], limits={"req_per_min": 10})])
    targets = catalog.resolve("m", everyone)
    waited, refused = fill(balancer, targets, headroom=0.2)
    assert waited == 16 and set(refused.reasons.values()) == {"requests"}  # 8 of 10 per key
    live, _ = fill(balancer, targets, headroom=0.0)
    assert live == 4  # what the batch left: 2 per key, still there for live requests


def test_headroom_applies_to_the_token_window_too_and_rounds_down():
    balancer, catalog, _ = make([p("a", ["k1"], limits={"tokens_per_min": 1000})])
    targets = catalog.resolve("m", everyone)
    waited, refused = fill(balancer, targets, headroom=0.25, tokens=100)
    assert waited == 7 and refused.reasons == {"a#1": "tokens"}  # 750 of 1000: 7 requests of 100
    live, _ = fill(balancer, targets, headroom=0.0, tokens=100)
    assert live == 3


def test_a_key_whose_reduced_window_holds_nothing_is_left_to_live_traffic():
    balancer, catalog, _ = make([p("a", ["k1"], limits={"req_per_min": 1})])
    targets = catalog.resolve("m", everyone)
    waited, refused = fill(balancer, targets, headroom=0.2)
    assert waited == 0 and refused.reasons == {"a#1": "headroom"} and refused.retry_after == pytest.approx(60.0)
    assert fill(balancer, targets, headroom=0.0)[0] == 1
