"""A deferred request runs at most once: not when its client gave up before a worker took it, and
not again when arq re-delivers it after the worker running it was killed mid-job."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import redis_command
from test_one_gateway import backdate, send

ADMIN = {"authorization": "Bearer admin-secret-key"}


@pytest.fixture(scope="module")
def gw(start_gateway, upstream, redis):
    cfg = config(
        [
            provider("idle", upstream.url, ["I1"], models=["idle-model"], limits={"req_per_min": 1}),
            provider("slow", upstream.url, ["S1"], models=["slow-model"], limits={"req_per_min": 1}),
        ],
        policy={"retry": {"max_attempts": 2, "timeout": "5s", "queue": True}},
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        # Short cron periods keep arq's in-progress lock (longest job timeout + 10 s) near 20 s.
        workers={"rollup_every": "10s", "compact_every": "10s", "warm_every": "10s"},
        logging={"level": "DEBUG", "json": True},
    )
    return start_gateway(cfg)


def worker_ready(redis):
    return lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1"


def outcome_count(gw, outcome: str) -> int:
    outcomes = httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()["outcomes"]
    return outcomes.get("deferred_chat", {}).get(outcome, 0)


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_request_whose_client_gave_up_is_cancelled_not_run(gw, fake, redis, tmp_path):
    backdate(redis, "idle", "I1", 58)  # frees in ~2 s; no worker is running yet
    started = time.monotonic()
    status = send(gw, "idle-model", "anyone?")
    assert status == 429 and 4.5 < time.monotonic() - started < 12  # the error it would have got, at its deadline
    worker = WorkerProcess(gw.config_path, tmp_path).start(ready=worker_ready(redis))
    try:
        assert wait_for(lambda: outcome_count(gw, "cancelled") >= 1, 15), worker.logs()
    finally:
        worker.stop()
    assert fake.count("I1") == 0  # the late worker found it cancelled and sent nothing


def test_a_job_killed_mid_call_is_never_executed_again(gw, fake, redis, tmp_path):
    fake.set_default("S1", Step(delay=4.0))  # the upstream takes 4 s: time to kill the worker mid-call
    first = WorkerProcess(gw.config_path, tmp_path).start(ready=worker_ready(redis))
    backdate(redis, "slow", "S1", 58.5)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(send, gw, "slow-model", "once only")
        assert wait_for(lambda: fake.count("S1") == 1, 10)
        first.kill()  # SIGKILL while the job's upstream call is in flight
        replacement = WorkerProcess(gw.config_path, tmp_path).start(ready=worker_ready(redis))
        try:
            assert pending.result() == 429  # the dead job never answered; the client got a clean error
            # arq re-delivers the job once the dead worker's in-progress lock expires (~20 s);
            # the replacement finds it claimed and does nothing.
            assert wait_for(lambda: outcome_count(gw, "skipped") >= 1, 40), replacement.logs()
        finally:
            replacement.stop()
    assert fake.count("S1") == 1
