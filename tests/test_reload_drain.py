"""Hot reload and graceful drain, with real gateway processes and real signals.

Reload: ``SIGHUP`` (to a single process, or to the main process of ``serve --workers 2``) and
``POST /admin/v1/config/reload`` read the config file again; an invalid file is refused and the
old config keeps serving; key state (windows) carries over. Drain: ``SIGTERM`` turns
``/health/ready`` to 503, and requests and streams in flight finish. Under steady load, two
reloads and the restart of one of two gateways cost no request (a client that, like a load
balancer, sends to the other gateway when one refuses connections).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest
import yaml

from fakeupstream import Step
from gateway import Gateway, config, provider

HEADERS = {"authorization": "Bearer client-key"}
KEY = "tk0123456789abcdef0123456789ab"


def chat(gateway: Gateway, model: str, text: str = "hi", **extra) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}], **extra},
                      headers=HEADERS, timeout=20)


def models(gateway: Gateway) -> set[str]:
    return {m["id"] for m in httpx.get(gateway.url + "/v1/models", headers=HEADERS, timeout=5).json()["data"]}


def rewrite(gateway: Gateway, data: dict) -> None:
    gateway.config_path.write_text(yaml.safe_dump(data, sort_keys=False))


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def streamed_text(raw: bytes) -> str:
    chunks = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def base_config(upstream_url: str, models_list=("m1",)) -> dict:
    return config([provider("p", upstream_url, [KEY], models=list(models_list), limits={"req_per_min": 4})])


def test_sighup_applies_a_new_config_and_keeps_the_key_windows(start_gateway, upstream, fake):
    cfg = base_config(upstream.url)
    gateway = start_gateway(cfg)
    assert [chat(gateway, "m1").status_code for _ in range(3)] == [200, 200, 200]
    rewrite(gateway, base_config(upstream.url, ("m1", "m2")))
    gateway.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "m2" in models(gateway))
    assert chat(gateway, "m2").status_code == 200  # the 4th request of the key's minute
    refused = chat(gateway, "m1")
    assert refused.status_code == 429  # the window carried over the reload: 4 per minute, not 4 more
    assert fake.calls[KEY] == 4
    assert "config reloaded" in gateway.logs()


def test_an_invalid_config_is_refused_and_the_running_one_keeps_serving(start_gateway, upstream, fake):
    gateway = start_gateway(base_config(upstream.url))
    gateway.config_path.write_text("llm_providers: [ {id: p, type: nonsense} ]\n")
    gateway.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "config reload refused" in gateway.logs())
    assert chat(gateway, "m1").status_code == 200
    answer = httpx.post(gateway.url + "/admin/v1/config/reload", headers={"authorization": "Bearer admin-secret-key"}, timeout=10)
    assert answer.status_code == 400 and answer.json()["reloaded"] is False
    assert any("type" in problem for problem in answer.json()["errors"])
    assert chat(gateway, "m1").status_code == 200 and gateway.process.poll() is None


def test_the_admin_route_reloads_and_names_what_needs_a_restart(start_gateway, upstream, fake):
    cfg = base_config(upstream.url)
    gateway = start_gateway(cfg)
    changed = base_config(upstream.url, ("m1", "m3"))
    changed["server"]["max_body_mb"] = 3  # a server setting: only a restart applies it
    rewrite(gateway, changed)
    answer = httpx.post(gateway.url + "/admin/v1/config/reload", headers={"authorization": "Bearer admin-secret-key"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"reloaded": True, "errors": [], "restart_needed": ["server"]}
    assert "m3" in models(gateway)
    assert httpx.post(gateway.url + "/admin/v1/config/reload", timeout=5).status_code == 401


def test_sighup_to_the_main_process_reloads_every_worker(start_gateway, upstream, fake):
    gateway = start_gateway(base_config(upstream.url), workers=2)
    rewrite(gateway, base_config(upstream.url, ("m1", "m4")))
    gateway.process.send_signal(signal.SIGHUP)

    def every_worker_knows_m4() -> bool:
        # fresh connections land on either worker; twenty in a row must all have the new model
        return all("m4" in models(gateway) for _ in range(20))

    assert wait_for(every_worker_knows_m4, timeout=15)
    assert gateway.logs().count("config reloaded") >= 2


def test_sigterm_drains_readiness_first_and_lets_a_stream_finish(start_gateway, upstream, fake):
    cfg = base_config(upstream.url)
    cfg["server"].update(drain_delay="1s", shutdown_grace="10s")
    gateway = start_gateway(cfg)
    fake.set_default(KEY, Step(chunks=8, chunk_delay=0.25))  # a 2 s stream
    got: dict = {}

    def stream() -> None:
        with httpx.stream("POST", gateway.url + "/v1/chat/completions", headers=HEADERS, timeout=20,
                          json={"model": "m1", "messages": [{"role": "user", "content": "long"}], "stream": True}) as response:
            got["status"] = response.status_code
            got["body"] = b"".join(response.iter_bytes())

    worker = threading.Thread(target=stream)
    worker.start()
    assert wait_for(lambda: fake.calls[KEY] == 1)
    gateway.process.send_signal(signal.SIGTERM)
    ready = httpx.get(gateway.url + "/health/ready", timeout=2)  # within drain_delay the listener still answers
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    worker.join(20)
    assert got["status"] == 200 and got["body"].rstrip().endswith(b"data: [DONE]")
    assert gateway.process.wait(20) == 0


def test_steady_load_survives_two_reloads_and_a_restart(start_gateway, upstream, fake, redis):
    cfg = base_config(upstream.url)
    cfg["llm_providers"][0]["limits"] = {"req_per_min": 100_000}
    cfg["storage"] = {"runtime": {"type": "redis", "url": redis.url}}
    cfg["server"].update(drain_delay="0.5s", shutdown_grace="10s")
    first, second = start_gateway(cfg), start_gateway(cfg)
    fake.default = Step(chunks=4, chunk_delay=0.02)
    stop = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(gateway: Gateway, other: Gateway, number: int) -> str:
        stream = number % 2 == 0
        body = {"model": "m1", "messages": [{"role": "user", "content": f"n{number}"}], "stream": stream}
        for target in (gateway, other):  # what a load balancer does with a refused connection
            try:
                with httpx.stream("POST", target.url + "/v1/chat/completions", json=body, headers=HEADERS, timeout=20) as response:
                    raw = b"".join(response.iter_bytes())
            except httpx.ConnectError:
                continue
            if response.status_code != 200:
                return f"status {response.status_code}: {raw[:200]!r}"
            if stream:
                return "ok" if raw.rstrip().endswith(b"data: [DONE]") and streamed_text(raw) == f"echo: n{number}" else f"cut stream {raw[-200:]!r}"
            return "ok" if json.loads(raw)["choices"][0]["message"]["content"] == f"echo: n{number}" else f"wrong answer {raw[:200]!r}"
        return "no gateway answered"

    def load(index: int) -> None:
        number = index
        while not stop.is_set():
            pair = (first, second) if number % 2 else (second, first)
            result = one(*pair, number)
            with lock:
                outcomes.append(result)
            number += 4

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        rewrite(first, {**cfg, "llm_providers": [{**cfg["llm_providers"][0], "models": ["m1", "m5"]}]})
        first.process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        rewrite(first, {**cfg, "llm_providers": [{**cfg["llm_providers"][0], "models": ["m1", "m6"]}]})
        first.process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(20) == 0
        second.start()
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    failures = [result for result in outcomes if result != "ok"]
    assert len(outcomes) > 40 and failures == [], failures[:5]
    assert "m6" in models(first)
