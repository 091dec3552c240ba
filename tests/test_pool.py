"""The balancer and the memory store, driven directly with a controllable clock."""

from __future__ import annotations

import asyncio

import pytest

from app.config import settings_from_data
from balancer.health import Outcome
from balancer.pool import Balancer, Exhausted
from storage.memory import MemoryStore


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(providers, policy=None, aliases=None):
    data = {"llm_providers": providers, "policy": policy or {}, "model_aliases": aliases or {}}
    settings = settings_from_data(data)
    clock = Clock()
    balancer = Balancer(settings, MemoryStore(), clock=clock)
    from balancer.catalog import Catalog

    return balancer, Catalog(settings), clock


def p(pid, keys, model="m", **extra):
    return {"id": pid, "type": "openai", "api_keys": keys, "model": model, **extra}


def run(coro):
    return asyncio.run(coro)


def everyone(_):
    return True


async def lease_keys(balancer, targets, n, *, prompt=10, max_tokens=10, release=True):
    keys = []
    for _ in range(n):
        lease = await balancer.acquire(targets, prompt_tokens=prompt, max_tokens=max_tokens)
        keys.append(lease.key.label)
        if release:
            await balancer.release(lease, Outcome.SUCCESS, tokens=prompt + max_tokens, latency=0.1)
    return keys


def test_least_loaded_prefers_fewest_in_flight():
    balancer, catalog, _ = make([p("a", ["k1", "k2", "k3"])], {"algorithm": "least_loaded"})
    targets = catalog.resolve("m", everyone)

    async def scenario():
        held = [await balancer.acquire(targets, prompt_tokens=1, max_tokens=1) for _ in range(3)]
        assert sorted(lease.key.label for lease in held) == ["a#1", "a#2", "a#3"]  # one each while in flight
        await balancer.release(held[1], Outcome.SUCCESS, tokens=2)
        nxt = await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
        assert nxt.key.label == held[1].key.label  # the only key with nothing in flight

    run(scenario())


def test_least_loaded_then_lowest_window_use():
    balancer, catalog, _ = make([p("a", ["k1", "k2"], limits={"tokens_per_min": 10_000})], {"algorithm": "least_loaded"})
    targets = catalog.resolve("m", everyone)

    async def scenario():
        big = await balancer.acquire(targets, prompt_tokens=10, max_tokens=10)
        await balancer.release(big, Outcome.SUCCESS, tokens=5_000)
        keys = await lease_keys(balancer, targets, 3)
        assert keys.count(big.key.label) == 0  # the other key stays below 5,000 tokens

    run(scenario())


def test_hybrid_avoids_erroring_and_slow_keys():
    balancer, catalog, _ = make([p("a", ["k1", "k2"])], {"algorithm": "hybrid"})
    targets = catalog.resolve("m", everyone)

    async def scenario():
        first = await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
        await balancer.release(first, Outcome.SERVER_ERROR)
        keys = await lease_keys(balancer, targets, 4)
        assert first.key.label not in keys

    run(scenario())


def test_cost_priority_prefers_the_cheapest_provider():
    cheap = p("cheap", ["c1"], pricing={"input_token_cost": 0.001, "output_token_cost": 0.002}, limits={"req_per_min": 2})
    dear = p("dear", ["d1"], pricing={"input_token_cost": 0.01, "output_token_cost": 0.03})
    for algorithm in ("round_robin", "least_loaded", "hybrid"):
        balancer, catalog, _ = make([dear, cheap], {"algorithm": algorithm, "priority": "cost"})
        targets = catalog.resolve("m", everyone)
        keys = run(lease_keys(balancer, targets, 4))
        assert keys == ["cheap#1", "cheap#1", "dear#1", "dear#1"], algorithm  # cheapest until it is full


def test_fallback_group_uses_later_targets_only_when_earlier_cannot():
    balancer, catalog, _ = make(
        [p("a", ["a1"], limits={"req_per_min": 1}), p("b", ["b1"])],
        {"algorithm": "hybrid"},
        aliases={"grp": ["a:m", "b:m"]},
    )
    targets = catalog.resolve("grp", everyone)
    assert run(lease_keys(balancer, targets, 3)) == ["a#1", "b#1", "b#1"]


def test_window_frees_after_sixty_seconds_and_retry_after_says_when():
    balancer, catalog, clock = make([p("a", ["k1"], limits={"req_per_min": 2})])
    targets = catalog.resolve("m", everyone)

    async def scenario():
        await lease_keys(balancer, targets, 1)
        clock.now += 20
        await lease_keys(balancer, targets, 1)
        with pytest.raises(Exhausted) as caught:
            await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
        assert caught.value.retry_after == pytest.approx(40)
        assert caught.value.reasons == {"a#1": "requests"}
        clock.now += 40.01
        assert (await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)).key.label == "a#1"

    run(scenario())


def test_token_window_is_corrected_to_real_usage():
    balancer, catalog, clock = make([p("a", ["k1"], limits={"tokens_per_min": 1000})])
    targets = catalog.resolve("m", everyone)

    async def scenario():
        lease = await balancer.acquire(targets, prompt_tokens=100, max_tokens=800)  # reserves 900
        with pytest.raises(Exhausted) as caught:
            await balancer.acquire(targets, prompt_tokens=100, max_tokens=100)
        assert caught.value.reasons == {"a#1": "tokens"}
        await balancer.release(lease, Outcome.SUCCESS, tokens=150)  # really used 150
        again = await balancer.acquire(targets, prompt_tokens=100, max_tokens=100)
        assert again.key.label == "a#1"

    run(scenario())


def test_failed_attempts_give_their_tokens_back_but_keep_the_request():
    balancer, catalog, _ = make([p("a", ["k1"], limits={"tokens_per_min": 1000, "req_per_min": 2})])
    targets = catalog.resolve("m", everyone)

    async def scenario():
        lease = await balancer.acquire(targets, prompt_tokens=100, max_tokens=800)
        await balancer.release(lease, Outcome.SERVER_ERROR)
        second = await balancer.acquire(targets, prompt_tokens=100, max_tokens=800)  # tokens free again
        await balancer.release(second, Outcome.SUCCESS, tokens=10)
        with pytest.raises(Exhausted) as caught:  # but two requests were sent this minute
            await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
        assert caught.value.reasons == {"a#1": "requests"}

    run(scenario())


def test_rate_limited_key_rests_for_retry_after():
    balancer, catalog, clock = make([p("a", ["k1"])])
    targets = catalog.resolve("m", everyone)

    async def scenario():
        lease = await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
        assert await balancer.release(lease, Outcome.RATE_LIMITED, retry_after=12) == 12
        with pytest.raises(Exhausted) as caught:
            await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
        assert caught.value.retry_after == pytest.approx(12) and caught.value.reasons == {"a#1": "cooldown"}
        clock.now += 12.5
        await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)

    run(scenario())


def test_request_larger_than_the_token_window_waits_for_an_empty_window():
    balancer, catalog, clock = make([p("a", ["k1"], limits={"tokens_per_min": 100})])
    targets = catalog.resolve("m", everyone)

    async def scenario():
        first = await balancer.acquire(targets, prompt_tokens=10, max_tokens=10)
        await balancer.release(first, Outcome.SUCCESS, tokens=20)
        with pytest.raises(Exhausted):
            await balancer.acquire(targets, prompt_tokens=500, max_tokens=500)
        clock.now += 61
        assert (await balancer.acquire(targets, prompt_tokens=500, max_tokens=500)).key.label == "a#1"

    run(scenario())


def test_a_provider_model_target_says_whether_the_config_lists_the_model():
    """Unlisted ``provider:model`` names must be marked so metrics label them ``(unlisted)``."""
    _, catalog, _ = make([p("a", ["a1"])])
    assert catalog.resolve("a:m", everyone)[0].listed is True
    assert catalog.resolve("a:anything-a-client-sends", everyone)[0].listed is False
