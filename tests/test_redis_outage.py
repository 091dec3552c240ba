"""Redis stops mid-load: both gateways keep answering (degraded, from memory), and when Redis
returns they go back to it by themselves, the worker too, and no usage event is lost."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from conftest import openai_client
from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import RedisServer, redis_command

ADMIN = {"authorization": "Bearer admin-secret-key"}


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("outage"), persistent=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def setup(start_gateway, upstream, redis):
    cfg = config(
        [provider("o", upstream.url, ["O1", "O2"], models=["o-model"])],
        policy={"retry": {"max_attempts": 2, "timeout": "10s"}},
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "500ms"}},
        workers={"rollup_every": "1s"},
    )
    first, second = start_gateway(cfg), start_gateway(cfg)
    worker = WorkerProcess(first.config_path, first.workdir)
    worker.start(ready=lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1")
    yield first, second, worker
    worker.stop()


class Load:
    """Clients sending chats to both gateways until stopped; every outcome and its latency is kept."""

    def __init__(self, gateways, threads: int = 6) -> None:
        self.gateways = gateways
        self.results: list[tuple[float, int, float]] = []  # (sent at, status, seconds)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        client = openai_client(self.gateways[index % len(self.gateways)], timeout=15)
        while not self._stop.is_set():
            started = time.time()
            try:
                client.chat.completions.create(model="o-model", messages=[{"role": "user", "content": uuid.uuid4().hex}])
                status = 200
            except Exception as error:  # a status error or a transport failure: both are failures here
                status = getattr(error, "status_code", 0)
            self.results.append((started, status, time.time() - started))

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def ready(gateway) -> dict:
    return httpx.get(gateway.url + "/health/ready", timeout=5).json()


def test_gateways_keep_answering_without_redis_and_recover_by_themselves(setup, redis, fake):
    first, second, worker = setup
    fake.set_default("O1", Step(prompt_tokens=5, completion_tokens=5))
    fake.set_default("O2", Step(prompt_tokens=5, completion_tokens=5))
    with Load([first, second]) as load:
        time.sleep(1.5)
        redis.stop()
        outage_started = time.time()
        time.sleep(3.0)
        during = [ready(first), ready(second)]
        redis.start()
        deadline = time.time() + 15
        while time.time() < deadline and any(ready(g)["status"] != "ready" for g in (first, second)):
            time.sleep(0.2)
        after = [ready(first), ready(second)]
        time.sleep(1.5)  # more traffic on the restored store

    assert all(r["status"] == "degraded" and r["storage"]["degraded"] for r in during), during
    assert all(r["status"] == "ready" for r in after), after
    statuses = [status for _, status, _ in load.results]
    assert statuses and set(statuses) == {200}, sorted(set(statuses))  # not one request failed
    in_outage = [seconds for at, _, seconds in load.results if at >= outage_started]
    assert in_outage and max(in_outage) < 3.0  # none hung on the dead store
    text = httpx.get(first.url + "/metrics").text
    assert "coo_llm_store_fallbacks_total 1.0" in text and "coo_llm_store_degraded 0.0" in text

    # The ledger lost nothing: events buffered during the outage were written back, and the
    # worker (which lost Redis too) folded every one of them once it could.
    served = fake.count("O1") + fake.count("O2")
    assert served == len(statuses)
    deadline = time.time() + 30
    total = {}
    while time.time() < deadline:
        total = httpx.get(first.url + "/admin/v1/usage", headers=ADMIN).json().get("total", {})
        if total.get("ok") == served:
            break
        time.sleep(0.5)
    assert total.get("ok") == served, (total, served, worker.logs()[-2000:])
