"""Two ``coo-llm serve`` processes and one ``coo-llm worker`` sharing one real Redis are one gateway:
one set of limits, one ledger, one cache, one queue.

Every number is checked at the fake upstream, which counts what it really received per key.
Limits are per 60-second window; each test finishes well inside one window, so "per minute"
is "in the test".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from app.config import RuntimeStorage
from balancer.keys import key_id as state_id
from conftest import openai_client
from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import redis_command
from storage import Reservation, WindowLimits, open_store

ADMIN = {"authorization": "Bearer admin-secret-key"}
PRICING = {"input_token_cost": 0.5, "output_token_cost": 1.5}


@pytest.fixture(scope="module")
def cluster(start_gateway, upstream, redis, tmp_path_factory):
    """(gateway A, gateway B, worker) on one Redis."""
    cfg = config(
        [
            provider("lim", upstream.url, ["L1", "L2"], models=["lim-model"], pricing=PRICING, limits={"req_per_min": 5}),
            provider("tok", upstream.url, ["T1"], models=["tok-model"], limits={"tokens_per_min": 600}),
            provider("roll", upstream.url, ["R1"], models=["roll-model"], pricing=PRICING),
            provider("q", upstream.url, ["Q1"], models=["q-model"], limits={"req_per_min": 1}),
            provider("q2", upstream.url, ["Q2"], models=["q2-model"], limits={"req_per_min": 1}),
            provider("c", upstream.url, ["C1"], models=["c-model"]),
        ],
        policy={"retry": {"max_attempts": 3, "timeout": "8s", "queue": True}, "cache": {"enabled": True, "ttl_seconds": 120}},
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        workers={"rollup_every": "1s", "compact_every": "5s"},
    )
    first = start_gateway(cfg)
    second = start_gateway(cfg)
    worker = WorkerProcess(first.config_path, first.workdir)
    worker.start(ready=lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1")
    yield first, second, worker
    worker.stop()


def fresh(text: str = "") -> str:
    """A unique prompt, so the shared cache never answers in place of the upstream."""
    return f"{text} {uuid.uuid4().hex}"


def send(gateway, model: str, content: str, **params) -> int:
    try:
        openai_client(gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **params)
        return 200
    except openai.APIStatusError as error:
        return error.status_code


def hammer(gateways, model: str, count: int, **params) -> list[int]:
    """``count`` concurrent clients, alternating between the gateways."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: send(gateways[i % len(gateways)], model, fresh("load"), **params), range(count)))


def test_request_limits_hold_across_both_processes(cluster, fake):
    first, second, _ = cluster
    for key in ("L1", "L2"):
        fake.set_default(key, Step(prompt_tokens=20, completion_tokens=10))
    statuses = hammer([first, second], "lim-model", 40)
    assert fake.count("L1") <= 5 and fake.count("L2") <= 5  # never more than req_per_min per key
    assert statuses.count(200) == fake.count("L1") + fake.count("L2") == 10  # and all of it used
    assert set(statuses) == {200, 429}


def test_the_token_window_holds_across_both_processes(cluster, fake):
    first, second, _ = cluster
    # Each request is reserved at its estimate (prompt ~16 + max_tokens 50) and corrected to the
    # upstream's real usage (10 + 50) when it settles, as with a real provider.
    fake.set_default("T1", Step(prompt_tokens=10, completion_tokens=50))
    statuses = hammer([first, second], "tok-model", 24, max_tokens=50)
    served = fake.count("T1")
    assert served * (10 + 50) <= 600  # the real tokens the upstream spent inside one window
    assert statuses.count(200) == served >= 5 and 429 in statuses


def test_the_usage_rollup_matches_the_upstream_and_the_pricing(cluster, fake):
    first, second, _ = cluster
    fake.set_default("R1", Step(prompt_tokens=30, completion_tokens=12))
    statuses = hammer([first, second], "roll-model", 12)
    for gateway in (first, second):  # streams are accounted the same way
        list(openai_client(gateway).chat.completions.create(model="roll-model", messages=[{"role": "user", "content": fresh()}], stream=True))
    assert statuses == [200] * 12 and fake.count("R1") == 14
    expected_cost = 14 * (30 * 0.5 + 12 * 1.5) / 1000
    deadline = time.time() + 20
    while time.time() < deadline:
        rows = {r["provider"]: r for r in httpx.get(second.url + "/admin/v1/usage", params={"group_by": "provider"}, headers=ADMIN).json()["data"]}
        if rows.get("roll", {}).get("requests") == 14:
            break
        time.sleep(0.3)
    row = rows["roll"]
    assert row["ok"] == fake.count("R1") == 14 and row["errors"] == 0 and row["cache_hits"] == 0, row
    assert row["cost_usd"] == pytest.approx(expected_cost)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (14 * 30, 14 * 12)
    by_key = {r["key"]: r for r in httpx.get(first.url + "/admin/v1/usage", params={"group_by": "key"}, headers=ADMIN).json()["data"]}
    assert by_key["roll#1"]["requests"] == 14


def backdate(redis, provider_id: str, secret: str, seconds_ago: float, *, requests: int = 1) -> None:
    """Take a key's only slot as if another process had used it ``seconds_ago`` seconds ago
    (state is stored under the key's digest identity, ``balancer.keys.key_id``)."""
    key_id = state_id(provider_id, secret)

    async def fill():
        store = open_store(RuntimeStorage(type="redis", url=redis.url, timeout=2), resilient=False)
        try:
            result = await store.reserve(key_id, tokens=1, limits=WindowLimits(requests=requests), now=time.time() - seconds_ago)
            assert isinstance(result, Reservation)
        finally:
            await store.close()

    asyncio.run(fill())


def test_a_deferred_retry_completes_through_the_worker_once_the_window_frees(cluster, fake, redis):
    first, _, _ = cluster
    backdate(redis, "q", "Q1", 57)  # the window frees in ~3 s, well inside the 8 s budget
    started = time.monotonic()
    raw = openai_client(first).chat.completions.with_raw_response.create(model="q-model", messages=[{"role": "user", "content": "wait for it"}])
    elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == "echo: wait for it"
    job_id = raw.headers["x-coo-llm-deferred"]
    assert elapsed > 2.0 and fake.count("Q1") == 1
    # It ran in the worker: only workers record arq job outcomes in Redis.
    outcomes = httpx.get(first.url + "/admin/v1/queue", headers=ADMIN).json()["outcomes"]
    assert outcomes["deferred_chat"]["success"] >= 1
    assert job_id.startswith("chat:" + raw.headers["x-request-id"])


def test_a_deferred_retry_that_cannot_get_a_slot_in_time_fails_cleanly(cluster, fake, redis):
    _, second, _ = cluster
    backdate(redis, "q2", "Q2", 56)  # frees in ~4 s ...
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(send, second, "q2-model", "never")
        time.sleep(1.0)
        backdate(redis, "q2", "Q2", 0, requests=2)  # ... but another process takes it again meanwhile
        status = pending.result()
    assert status == 429 and time.monotonic() - started < 12  # by its deadline (8 s), with slack for a busy machine
    assert fake.count("Q2") == 0  # nothing was sent upstream for it


def test_a_cache_entry_written_by_one_process_answers_on_the_other(cluster, fake):
    first, second, _ = cluster
    prompt = fresh("cached")
    miss = openai_client(first).chat.completions.with_raw_response.create(model="c-model", messages=[{"role": "user", "content": prompt}])
    hit = openai_client(second).chat.completions.with_raw_response.create(model="c-model", messages=[{"role": "user", "content": prompt}])
    assert miss.headers["x-coo-llm-cache"] == "miss" and hit.headers["x-coo-llm-cache"] == "hit"
    assert hit.parse().choices[0].message.content == miss.parse().choices[0].message.content
    assert fake.count("C1") == 1


def test_queue_and_store_are_visible_in_admin_health_and_metrics(cluster):
    first, _, _ = cluster
    snapshot = httpx.get(first.url + "/admin/v1/queue", headers=ADMIN).json()
    assert snapshot["backend"] == "arq" and snapshot["worker"] and "j_complete=" in snapshot["worker"]
    assert snapshot["outcomes"]["rollup_usage"]["success"] >= 1
    ready = httpx.get(first.url + "/health/ready").json()
    assert ready["status"] == "ready" and ready["storage"] == {"type": "redis", "ok": True, "shared": True}
    text = httpx.get(first.url + "/metrics").text
    assert 'coo_llm_queue_depth{state="ready"}' in text and "coo_llm_store_degraded 0.0" in text
    # The worker's job outcomes reach the web process's /metrics (read from Redis at scrape time).
    finished = [line for line in text.splitlines() if line.startswith('coo_llm_queue_jobs_finished{function="rollup_usage",outcome="success"}')]
    assert finished and float(finished[0].rsplit(" ", 1)[1]) >= 1
    assert 'coo_llm_queue_job_seconds{function="rollup_usage"}' in text
    keys = httpx.get(first.url + "/admin/v1/keys", params={"minutes": 5}, headers=ADMIN).json()["data"]
    lim = {k["id"]: k for k in keys}["lim#1"]
    assert sum(point["requests"] for point in lim["history"]) == 5  # per-minute history, shared
