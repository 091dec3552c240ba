"""With a shared store (a real Redis) the balancer ranks keys on per-process snapshots: each
reservation brings its key's state back, so the keys' states are read with ``key_states`` once
per ``STATE_MAX_AGE``, not once per request; limits stay exact because reserving is atomic."""

from __future__ import annotations

import asyncio
import re

from app.config import RuntimeStorage, settings_from_data
from balancer.catalog import Catalog
from balancer.health import Outcome
from balancer.pool import STATE_MAX_AGE, Balancer
from storage import open_store
from servers import redis_command

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def script_calls(port: int) -> int:
    """EVALSHA calls the server has run since the last CONFIG RESETSTAT."""
    found = re.search(rb"cmdstat_evalsha:calls=(\d+)", redis_command(port, "INFO", "commandstats"))
    return int(found.group(1)) if found else 0


def make(redis_server, clock):
    settings = settings_from_data(
        {"llm_providers": [{"id": "a", "type": "openai", "api_keys": ["k1", "k2"], "model": "m", "limits": {"req_per_min": 15}}],
         "policy": {"algorithm": "hybrid"}}
    )
    store = open_store(RuntimeStorage(type="redis", url=redis_server.url, timeout=5), resilient=False)
    return Balancer(settings, store, clock=clock), Catalog(settings).resolve("m", lambda _: True), store


def test_states_are_read_once_per_max_age_and_limits_stay_exact(redis_server):
    redis_server.flush()
    clock = Clock()

    async def scenario():
        balancer, targets, store = make(redis_server, clock)
        other, _, other_store = make(redis_server, clock)  # a second process sharing the Redis
        try:
            redis_command(redis_server.port, "CONFIG", "RESETSTAT")
            used, calls = [], []
            for n in range(20):
                if n == 10:  # every script is loaded by now (a first use costs a retry after NOSCRIPT)
                    calls.append(script_calls(redis_server.port))
                lease = await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
                used.append(lease.key.label)
                await balancer.release(lease, Outcome.SUCCESS, tokens=2, latency=0.01)
            calls.append(script_calls(redis_server.port))
            # The other process takes all but one of the requests left in the keys' windows (15 each).
            for _ in range(9):
                await other.acquire(targets, prompt_tokens=1, max_tokens=1)
            clock.now += STATE_MAX_AGE + 0.1
            lease = await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
            refused = None
            try:
                await balancer.acquire(targets, prompt_tokens=1, max_tokens=1)
            except Exception as error:  # noqa: BLE001 - the type is checked below
                refused = error
            return used, calls, lease, refused
        finally:
            await store.close()
            await other_store.close()

    used, calls, lease, refused = asyncio.run(scenario())
    # Within STATE_MAX_AGE a request costs its reserve and its settle, and no state read.
    assert calls[1] - calls[0] == 10 * 2
    assert used.count("a#1") == used.count("a#2") == 10  # the snapshots still spread the load
    assert lease is not None and type(refused).__name__ == "Exhausted"  # 15 + 15 granted, never more
