"""One contract, every backend: memory, file (SQLite), redis, http (webdis) and a real Redis Cluster.

Each test opens the bare backend (no resilient wrapper) on fresh state and checks the promises of
``storage.base``: windows (also under concurrency, and across two OS processes for the shared
backends), expiry, cooldowns, health, the cache, events and roll-ups, compaction and claims.
Times are passed as ``now``, as the balancer does, so a minute of traffic takes no real minute.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import RuntimeStorage
from storage import CacheEntry, Refusal, Reservation, UsageEvent, WindowLimits, open_store
from storage.usage import fold, plan_buckets

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["memory", "file", "redis", "http", "cluster"]
T0 = 1_800_000_000.0  # a fixed "now" (UTC 2027-01-15 08:00) so buckets and minutes are predictable


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    from servers import RedisCluster, binary

    if binary("redis-server") is None or binary("redis-cli") is None:
        pytest.fail("redis-server / redis-cli are not installed")
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def storage_config(request, tmp_path) -> RuntimeStorage:
    kind = request.param
    if kind == "memory":
        return RuntimeStorage(type="memory")
    if kind == "file":
        return RuntimeStorage(type="file", path=str(tmp_path / "state.db"))
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        return RuntimeStorage(type="redis", url=server.url, timeout=5)
    if kind == "http":
        server = request.getfixturevalue("redis_server")
        server.flush()
        webdis = request.getfixturevalue("webdis_server")
        return RuntimeStorage(type="http", url=webdis.url, timeout=5)
    cluster = request.getfixturevalue("redis_cluster")
    from servers import redis_command

    for node in cluster.nodes:
        redis_command(node.port, "FLUSHALL")
    return RuntimeStorage(type="redis", url=cluster.url, cluster=True, timeout=5)


def run_with(config: RuntimeStorage, scenario) -> object:
    """Run ``scenario(store)`` on a fresh event loop with a freshly opened store, then close it."""

    async def main():
        store = open_store(config, resilient=False)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


LIMITS = WindowLimits(requests=3, tokens=1000)


# ---------------------------------------------------------------------------------- windows


def test_request_window_admits_up_to_the_limit_then_says_when_it_frees(storage_config):
    async def scenario(store):
        results = [await store.reserve("p#1", tokens=10, limits=LIMITS, now=T0 + i) for i in range(4)]
        assert [isinstance(r, Reservation) for r in results] == [True, True, True, False]
        refusal = results[3]
        assert refusal.reason == "requests"
        assert refusal.retry_after == pytest.approx(T0 + 60 - (T0 + 3))  # the oldest entry leaves at T0+60
        # Another key is independent.
        assert isinstance(await store.reserve("p#2", tokens=10, limits=LIMITS, now=T0 + 3), Reservation)
        # The oldest entry leaves the window: room again, exactly after it.
        assert isinstance(await store.reserve("p#1", tokens=10, limits=LIMITS, now=T0 + 59.9), Refusal)
        assert isinstance(await store.reserve("p#1", tokens=10, limits=LIMITS, now=T0 + 60.0), Reservation)

    run_with(storage_config, scenario)


def test_token_window_counts_estimates_and_settle_corrects_them(storage_config):
    async def scenario(store):
        limits = WindowLimits(requests=None, tokens=100)
        first = await store.reserve("p#1", tokens=60, limits=limits, now=T0)
        refused = await store.reserve("p#1", tokens=50, limits=limits, now=T0 + 1)
        assert isinstance(first, Reservation)
        assert isinstance(refused, Refusal) and refused.reason == "tokens"
        assert refused.retry_after == pytest.approx(59.0)
        await store.settle(first, tokens=20, failed=False, latency=0.5, now=T0 + 2)  # real usage was smaller
        second = await store.reserve("p#1", tokens=50, limits=limits, now=T0 + 3)
        assert isinstance(second, Reservation)
        states = await store.key_states(["p#1"], window=60, now=T0 + 4)
        assert (states["p#1"].requests, states["p#1"].tokens, states["p#1"].inflight) == (2, 70, 1)
        # A request larger than the whole window waits for an empty window, not forever.
        huge = await store.reserve("p#1", tokens=10_000, limits=limits, now=T0 + 5)
        assert isinstance(huge, Refusal) and huge.retry_after == pytest.approx(58.0)

    run_with(storage_config, scenario)


def test_cooldown_refuses_until_it_ends_and_never_shortens(storage_config):
    async def scenario(store):
        await store.cool_down("p#1", T0 + 30)
        await store.cool_down("p#1", T0 + 10)  # an earlier end does not shorten the rest
        refusal = await store.reserve("p#1", tokens=1, limits=LIMITS, now=T0 + 5)
        assert isinstance(refusal, Refusal) and refusal.reason == "cooldown"
        assert refusal.retry_after == pytest.approx(25.0)
        assert isinstance(await store.reserve("p#1", tokens=1, limits=LIMITS, now=T0 + 30.01), Reservation)
        states = await store.key_states(["p#1"], window=60, now=T0 + 31)
        assert states["p#1"].cooldown_until == pytest.approx(T0 + 30)

    run_with(storage_config, scenario)


def test_settle_tracks_failures_error_rate_and_latency(storage_config):
    async def scenario(store):
        limits = WindowLimits()
        counts = []
        for failed in (True, True, None, False):
            lease = await store.reserve("p#1", tokens=5, limits=limits, now=T0)
            counts.append(await store.settle(lease, tokens=5, failed=failed, latency=0.2 if failed is False else None, now=T0))
        assert counts == [1, 2, 2, 0]  # a client error (None) says nothing about the key
        state = (await store.key_states(["p#1"], window=60, now=T0))["p#1"]
        assert state.failures == 0 and state.inflight == 0
        assert state.error_rate == pytest.approx(0.2 + 0.8 * 0.2 - 0.2 * (0.2 + 0.8 * 0.2))  # EWMA: 1, 1, then 0
        assert state.latency == pytest.approx(0.2)

    run_with(storage_config, scenario)


def test_concurrent_reservations_never_exceed_the_limit(storage_config):
    async def scenario(store):
        limits = WindowLimits(requests=10, tokens=None)
        results = await asyncio.gather(*(store.reserve("p#1", tokens=1, limits=limits, now=T0) for _ in range(60)))
        return sum(isinstance(r, Reservation) for r in results)

    assert run_with(storage_config, scenario) == 10


_RACER = """
import asyncio, json, sys, time
from app.config import RuntimeStorage
from storage import Reservation, WindowLimits, open_store
config, start, now, keys, attempts = RuntimeStorage(**json.loads(sys.argv[1])), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
async def main():
    store = open_store(config, resilient=False)
    await store.ping()
    await asyncio.sleep(max(0.0, start - time.time()))
    limits = WindowLimits(requests=5, tokens=None)
    calls = [store.reserve(f"race#{k}", tokens=1, limits=limits, now=now) for k in range(keys) for _ in range(attempts)]
    results = await asyncio.gather(*calls)
    await store.close()
    print(json.dumps([r.key_id for r in results if isinstance(r, Reservation)]))
asyncio.run(main())
"""


def test_two_processes_never_both_take_the_last_slot(storage_config):
    if storage_config.type in ("memory", "file"):
        pytest.skip(f"{storage_config.type} state is per process by design")
    start = time.time() + 1.5  # both processes fire at the same moment
    args = [json.dumps(storage_config.model_dump()), str(start), str(T0), "20", "8"]
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    taken: dict[str, int] = {}
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        for key_id in json.loads(out):
            taken[key_id] = taken.get(key_id, 0) + 1
    # 2 processes x 8 attempts on each of 20 keys with room for 5: exactly 5 per key, never 6.
    assert taken == {f"race#{k}": 5 for k in range(20)}


# ---------------------------------------------------------------------------------- cache


def entry(key: str, expires_at: float, body: bytes = b'{"id":"x"}') -> CacheEntry:
    return CacheEntry(key, body, expires_at, meta={"provider": "p", "cost": 0.5, "request": {"model": "m"}})


def test_cache_counts_hits_expires_lists_hot_entries_and_purges(storage_config):
    async def scenario(store):
        now = time.time()
        assert await store.cache_get("a", now=now) is None
        await store.cache_put(entry("a", now + 100, "{\"é\": 1}".encode()), now=now)
        await store.cache_put(entry("b", now + 10), now=now)
        await store.cache_put(entry("c", now + 300), now=now)
        first = await store.cache_get("a", now=now)
        assert first.body == "{\"é\": 1}".encode() and first.hits == 1 and first.meta["request"] == {"model": "m"}
        assert first.expires_at == pytest.approx(now + 100)
        assert (await store.cache_get("a", now=now)).hits == 2
        await store.cache_get("b", now=now)
        await store.cache_get("c", now=now)
        await store.cache_get("c", now=now)
        # Hot: at least 2 hits and expiring within 200 s -> only "a" ("c" expires later, "b" has 1 hit).
        hot = await store.cache_hot(min_hits=2, expiring_before=now + 200, now=now)
        assert [(e.key, e.hits) for e in hot] == [("a", 2)]
        # Expired entries are gone.
        assert await store.cache_get("b", now=now + 11) is None
        # A put replaces the entry and resets its hits.
        await store.cache_put(entry("a", now + 100, b"{}"), now=now)
        assert (await store.cache_get("a", now=now)).hits == 1
        assert await store.cache_purge() >= 2
        assert await store.cache_get("a", now=now) is None and await store.cache_get("c", now=now) is None

    run_with(storage_config, scenario)


# ---------------------------------------------------------------------------------- usage


def event(at: float, **fields) -> UsageEvent:
    base = dict(client="ck-1", provider="p", key="p#1", model="m", prompt_tokens=10, completion_tokens=5, cost=0.01, status=200, latency_ms=12.5)
    return UsageEvent(at=at, **{**base, **fields})


async def fold_all(store, batch: int = 3) -> int:
    """What the roll-up job does: fold batches after the stored cursor until none is left."""
    folded = 0
    while True:
        cursor = await store.rollup_cursor()
        events = await store.read_events(cursor, limit=batch)
        if not events:
            return folded
        assert await store.apply_rollup(fold(e for _, e in events), expected=cursor, cursor=events[-1][0])
        folded += len(events)


def test_events_are_read_in_order_after_a_cursor(storage_config):
    async def scenario(store):
        await store.append_events([event(T0 + i, request_id=f"r{i}") for i in range(5)])
        first = await store.read_events("", limit=2)
        rest = await store.read_events(first[-1][0], limit=10)
        assert [e.request_id for _, e in first + rest] == [f"r{i}" for i in range(5)]
        assert rest[0][1] == event(T0 + 2, request_id="r2")  # every field survives the round trip
        assert await store.read_events(rest[-1][0], limit=10) == []

    run_with(storage_config, scenario)


def test_rollup_folds_once_even_when_two_folders_race(storage_config):
    async def scenario(store):
        events = [event(T0 + i * 600, client="ck-1" if i % 2 else "ck-2", cost=0.25, status=200 if i != 3 else 503, cache_hit=i == 4) for i in range(8)]
        await store.append_events(events)
        cursor = await store.rollup_cursor()
        batch = await store.read_events(cursor, limit=100)
        rollup = fold(e for _, e in batch)
        # Two workers folded the same batch: only the first one's increments count.
        assert await store.apply_rollup(rollup, expected=cursor, cursor=batch[-1][0]) is True
        assert await store.apply_rollup(rollup, expected=cursor, cursor=batch[-1][0]) is False
        assert await store.read_events(await store.rollup_cursor(), limit=100) == []
        rows = await store.rollup_rows(plan_buckets(T0, T0 + 86400))
        totals = {}
        for dims, values in rows:
            per_client = totals.setdefault(dims[0], dict.fromkeys(values, 0))
            for name, value in values.items():
                per_client[name] = per_client.get(name, 0) + value
        assert totals["ck-1"]["requests"] == 4 and totals["ck-2"]["requests"] == 4
        assert totals["ck-1"]["errors"] == 1 and totals["ck-1"]["ok"] == 3
        assert totals["ck-2"]["cache_hits"] == 1
        assert totals["ck-1"]["cost_usd"] + totals["ck-2"]["cost_usd"] == pytest.approx(2.0)
        assert totals["ck-1"]["prompt_tokens"] == 40

    run_with(storage_config, scenario)


def test_a_fold_that_crashed_before_applying_is_redone_and_loses_nothing(storage_config):
    async def scenario(store):
        await store.append_events([event(T0 + i) for i in range(7)])
        await store.read_events("", limit=3)  # a worker read a batch, then died before applying it
        assert await fold_all(store, batch=3) == 7
        await store.append_events([event(T0 + 10)])
        assert await fold_all(store, batch=3) == 1
        rows = await store.rollup_rows([("hour", int(T0 // 3600) * 3600)])
        assert sum(r["requests"] for _, r in rows) == 8
        day_rows = await store.rollup_rows([("day", int(T0 // 86400) * 86400)])
        assert sum(r["cost_usd"] for _, r in day_rows) == pytest.approx(0.08)

    run_with(storage_config, scenario)


# ---------------------------------------------------------------------------------- compaction


def test_compaction_trims_idle_keys_and_keeps_per_minute_history(storage_config):
    async def scenario(store):
        limits = WindowLimits(requests=100, tokens=None)
        for i in range(6):  # a request every 40 s: at 0, 40, 80, 120, 160 and 200 s
            lease = await store.reserve("p#1", tokens=10, limits=limits, now=T0 + 40 * i)
            await store.settle(lease, tokens=7, failed=False, latency=0.1, now=T0 + 40 * i + 1)
        before = await store.footprint(["p#1"])
        assert before["window_entries"] == 2 and before["history_points"] == 4  # minutes 0, 1, 2, 3
        history = (await store.key_history(["p#1"], since=T0))["p#1"]
        # Minute 0 had two requests; their estimates of 10 tokens were corrected to 7 each.
        assert history == [(int(T0), 2, 14), (int(T0) + 60, 1, 7), (int(T0) + 120, 2, 14), (int(T0) + 180, 1, 7)]
        assert (await store.key_history(["p#1"], since=T0 + 150))["p#1"] == history[2:]
        # The key goes idle; compaction at T0+10min with 3 minutes of history keeps minutes 7..9 only.
        removed = await store.compact(["p#1"], window=60, history=180, now=T0 + 600)
        after = await store.footprint(["p#1"])
        assert after["window_entries"] == 0 and after["inflight"] == 0
        assert after["history_points"] == 0  # all four minutes are older than 3 minutes
        assert removed >= 6

    run_with(storage_config, scenario)


def test_state_stays_flat_under_constant_load_with_compaction(storage_config):
    async def scenario(store):
        keys = [f"flat#{k}" for k in range(4)]
        limits = WindowLimits(requests=1000, tokens=None)
        sizes = []
        for minute in range(24):
            now = T0 + 60 * minute
            for k in keys:
                for i in range(15):
                    lease = await store.reserve(k, tokens=5, limits=limits, now=now + i)
                    await store.settle(lease, tokens=4, failed=False, latency=0.1, now=now + i)
            await store.compact(keys, window=60, history=300, now=now + 30)
            sizes.append(await store.footprint(keys))
        return sizes

    sizes = run_with(storage_config, scenario)
    steady = sizes[8:]
    assert all(s == steady[0] for s in steady), steady  # the same size minute after minute
    assert steady[0]["window_entries"] <= 4 * 15 and steady[0]["history_points"] <= 4 * 6


# ---------------------------------------------------------------------------------- claims


def test_a_claim_has_one_holder_until_it_expires(storage_config):
    async def scenario(store):
        now = time.time()
        owners = await asyncio.gather(*(store.claim("job-1", f"worker-{i}", ttl=0.5, now=now) for i in range(10)))
        assert len(set(owners)) == 1 and owners[0].startswith("worker-")
        assert await store.claim("job-2", "web", ttl=30, now=now) == "web"
        await asyncio.sleep(0.7)
        assert await store.claim("job-1", "late", ttl=5, now=time.time()) == "late"
        assert await store.claim("job-2", "worker", ttl=5, now=time.time()) == "web"

    run_with(storage_config, scenario)


# ---------------------------------------------------------------------------------- documents and counters


def test_documents_are_replaced_listed_in_put_order_deleted_and_expire(storage_config):
    async def scenario(store):
        now = time.time()
        await store.doc_put("things", "a", {"n": 1, "tags": ["x"]}, now=now)
        await store.doc_put("things", "b", {"n": 2}, now=now)
        await store.doc_put("things", "short", {"n": 3}, ttl=0.3, now=now)
        await store.doc_put("things", "a", {"n": 10}, now=now)  # replaced: moves to the end
        await store.doc_put("others", "a", {"other": True}, now=now)
        listed = await store.doc_list("things", now=now)
        got = await store.doc_get("things", "a", now=now)
        missing = await store.doc_get("things", "nope", now=now)
        await asyncio.sleep(0.45)
        later = time.time()
        after_ttl = await store.doc_list("things", now=later), await store.doc_get("things", "short", now=later)
        deleted = await store.doc_delete("things", "b"), await store.doc_delete("things", "b")
        return listed, got, missing, after_ttl, deleted, await store.doc_list("things", now=later), await store.doc_get("others", "a", now=later)

    listed, got, missing, (after_ttl, short), deleted, final, other = run_with(storage_config, scenario)
    assert [d["n"] for d in listed] == [2, 3, 10]
    assert got == {"n": 10} and missing is None
    assert [d["n"] for d in after_ttl] == [2, 10] and short is None
    assert deleted == (True, False)
    assert final == [{"n": 10}] and other == {"other": True}


def test_counters_add_atomically_within_limits(storage_config):
    async def scenario(store):
        results = await asyncio.gather(
            *(store.counters_add("budget:c1", {"day": 1.5, "month": 1.5}, limits={"day": 10, "month": 100}) for _ in range(10))
        )
        values = await store.counters_get("budget:c1")
        plain = await store.counters_add("progress", {"done": 2, "failed": 1})
        more = await store.counters_add("progress", {"done": -1})
        await store.counters_drop("budget:c1", ["month"])
        dropped = await store.counters_get("budget:c1")
        await store.counters_add("short", {"n": 1}, ttl=0.3)
        await asyncio.sleep(0.45)
        return results, values, plain, more, dropped, await store.counters_get("short"), await store.counters_get("never-written")

    results, values, plain, more, dropped, expired, empty = run_with(storage_config, scenario)
    assert sum(1 for applied, _ in results if applied) == 6  # 6 x 1.5 = 9 <= 10; a 7th would be 10.5
    refused = [v for applied, v in results if not applied]
    assert len(refused) == 4 and all(v["day"] == pytest.approx(9.0) for v in refused)
    assert values["day"] == pytest.approx(9.0) and values["month"] == pytest.approx(9.0)
    assert plain == (True, {"done": 2.0, "failed": 1.0}) and more == (True, {"done": 1.0})
    assert "month" not in dropped and dropped["day"] == pytest.approx(9.0)
    assert expired == {} and empty == {}


# ---------------------------------------------------------------------------------- runtime clients (contracts 1, 2, 8, 9)


def test_clients_are_held_found_by_digest_and_revoked(storage_config):
    """What ``app.clients`` keeps in a store: a client document, its key index, the version counter."""
    from app.clients import CLIENT_KEYS, CLIENTS, ClientDirectory, ClientInput, client_document, key_digest, new_client_id, new_key

    async def scenario(store):
        here, there = ClientDirectory(store), ClientDirectory(store)  # two processes' directories
        await here.reload()
        await there.reload()
        empty = here.empty
        key, now = new_key(), time.time()
        spec = ClientInput.model_validate({"name": "t", "allowed_models": ["m"], "limits": {"req_per_min": 3}, "budgets": {"usd_per_day": 2.5}})
        doc = client_document(spec, client_id=new_client_id(), key=key, now=now)
        await store.doc_put(CLIENT_KEYS, doc["digest"], {"id": doc["id"]}, now=now)
        await store.doc_put(CLIENTS, doc["id"], doc, now=now)
        await here.changed()
        digest = key_digest(key)
        local, looked_up = here.find(digest), await there.look_up(digest)  # "there" has not reloaded: the store lookup
        unknown = await there.look_up(key_digest(new_key()))
        await store.doc_put(CLIENTS, doc["id"], {**doc, "revoked": True}, now=now)
        await here.changed()
        await there._poll_once()  # the version moved: "there" reads again
        return empty, here.empty, local, looked_up, unknown, there.find(digest), here.names()

    empty, not_empty, local, looked_up, unknown, after, names = run_with(storage_config, scenario)
    assert empty is True and not_empty is False
    principal = local[1]
    assert principal == looked_up[1] and principal.models == frozenset({"m"}) and not principal.revoked
    assert (principal.rules.req_per_min, principal.rules.usd_per_day, principal.rules.usd_per_month) == (3, 2.5, None)
    assert unknown is None
    assert after[1].revoked is True and after[1].id == principal.id and names == {principal.id: "t"}


def test_client_budgets_and_windows_hold_across_governors(storage_config):
    """Two ``Governor``s (two processes) on one store: the budget and the request window are one."""
    from app.accounting import RequestRecord
    from app.auth import Principal, Rules
    from app.calls import Call
    from app.config import settings_from_data
    from app.endpoints import CHAT
    from app.errors import BudgetExceeded, ClientRateLimited
    from app.governance import Governor
    from app.service import Plan
    from balancer.catalog import Catalog
    from balancer.pool import Balancer

    settings = settings_from_data(
        {"llm_providers": [{"id": "p", "type": "openai", "api_keys": ["k"], "models": ["m"], "pricing": {"input_token_cost": 1, "output_token_cost": 2}}]}
    )
    targets = Catalog(settings).resolve("m", lambda _: True)
    each = 10 * 0.001 + 100 * 0.002  # the worst case of one request: 0.21 USD

    def plan_for(principal):
        return Plan(Call(endpoint=CHAT, body={}, model="m", principal=principal, max_tokens=100, prompt_tokens=10), list(targets), {})

    async def scenario(store):
        governors = [Governor(settings, store, Balancer(settings, store)) for _ in range(2)]
        budgeted = Principal(f"cl_b{time.time_ns()}", rules=Rules(usd_per_day=0.5))
        records = [RequestRecord(f"r{n}") for n in range(4)]
        results = await asyncio.gather(
            *(governors[n % 2].admit(plan_for(budgeted), records[n]) for n in range(4)), return_exceptions=True
        )
        admitted = [(r, records[n]) for n, r in enumerate(results) if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        admission, record = admitted[0]
        record.charge(10, 20, 0.05)  # cheaper than its worst case: the difference goes back
        await admission.settle(record)
        await admission.settle(record)  # twice: counted once
        again = await governors[1].admit(plan_for(budgeted), RequestRecord("r5"))
        spent = await store.counters_get(f"spend:{budgeted.id}")
        windowed = Principal(f"cl_w{time.time_ns()}", rules=Rules(req_per_min=3))
        window = await asyncio.gather(*(governors[n % 2].admit(plan_for(windowed), RequestRecord("w")) for n in range(5)), return_exceptions=True)
        return admitted, refused, record, again, spent, window

    admitted, refused, record, again, spent, window = run_with(storage_config, scenario)
    assert len(admitted) == 2 and len(refused) == 2 and all(isinstance(e, BudgetExceeded) for e in refused)
    assert record.budget_remaining == pytest.approx(0.5 - each - 0.05)
    assert again.usd == pytest.approx(each)
    day = [name for name in spent if name.startswith("usd:") and len(name) == 14]
    assert spent[day[0]] == pytest.approx(0.05 + 2 * each) and spent[day[0].replace("usd:", "req:")] == 1
    assert sum(1 for r in window if isinstance(r, ClientRateLimited)) == 2
