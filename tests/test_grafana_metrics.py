"""The Grafana dashboard asks only for what a running deployment exports, and ``/metrics`` of
``serve --workers 2`` is one coherent set of series.

The deployment here is the compose file's shape on loopback: a ``serve --workers 2`` gateway and
a ``coo-llm worker`` with its metrics port, on one real Redis. Traffic through the fake upstream
makes every kind of series appear (successes, streams, cache hits, retries, a failover,
cooldowns and refusals, a deferral, an unpriced model, an answer without usage, jobs); then
every PromQL expression of ``configs/grafana/dashboards/coo-llm.json`` is parsed
(``tests/promql.py``) and checked against the union of both ``/metrics`` pages, as Prometheus
scrapes both (``configs/prometheus.yml``): metric names, label names in matchers, ``by``
clauses and legends, ``le`` for quantiles, counters under ``rate``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import promql
from conftest import openai_client
from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import free_port, redis_command

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "configs/grafana/dashboards/coo-llm.json"
ADMIN = {"authorization": "Bearer admin-secret-key"}
PRICING = {"input_token_cost": 1.0, "output_token_cost": 2.0}
HELLO = [{"role": "user", "content": "hello"}]
# Labels Prometheus itself puts on every scraped series (never in /metrics).
TARGET_LABELS = frozenset({"job", "instance"})


def dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, expr, legend) of every query in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"], target.get("legendFormat", "")) for panel in dashboard["panels"] for target in panel["targets"]]


def families(text: str) -> list:
    return list(text_string_to_metric_families(text))


@pytest.fixture(scope="module")
def deployment(start_gateway, upstream, redis, tmp_path_factory):
    """(gateway with two web processes, worker metrics URL), on one Redis, as docker-compose.yml runs them."""
    cfg = config(
        [
            provider("oa", upstream.url, ["OA1", "OA2"], models=["gpt-test"], pricing=PRICING),
            provider("bad", upstream.url, ["BAD1"], models=["gpt-test"], pricing=PRICING),
            provider("rest", upstream.url, ["REST1"], models=["gpt-rest"], pricing=PRICING),
            provider("cnt", upstream.url, ["CNT1"], models=["gpt-count"], pricing=PRICING),
            provider("free", upstream.url, ["FREE1"], type="custom", models=["no-price-model-xyz"]),
        ],
        model_aliases={"fallback": ["bad:gpt-test", "oa:gpt-test"]},
        policy={"retry": {"max_attempts": 3, "timeout": "5s", "queue": True}, "cache": {"enabled": True, "ttl_seconds": 120}},
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        workers={"rollup_every": "1s", "compact_every": "2s"},
    )
    gateway = start_gateway(cfg, workers=2)
    port = free_port()
    worker = WorkerProcess(gateway.config_path, gateway.workdir, env={"COO_WORKER_METRICS_PORT": str(port)})
    worker.start(ready=lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1")
    yield gateway, f"http://127.0.0.1:{port}/metrics"
    worker.stop()


def send_everything(gateway, fake) -> None:
    """One of each kind of request the dashboard has a series for."""
    client = openai_client(gateway, key="client-key")
    client.chat.completions.create(model="gpt-test", messages=HELLO)  # success, then a cache hit
    client.chat.completions.create(model="gpt-test", messages=HELLO)
    for chunk in client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "stream"}], stream=True):
        pass
    fake.script("OA1", Step(status=500))
    fake.script("OA2", Step(status=500))
    client.chat.completions.create(model="oa:gpt-test", messages=[{"role": "user", "content": "retry"}], extra_headers={"cache-control": "no-store"})
    fake.set_default("BAD1", Step(status=500))
    client.chat.completions.create(model="fallback", messages=[{"role": "user", "content": "fail over"}])
    fake.set_default("REST1", Step(status=429, headers={"retry-after": "30"}))
    for _ in range(2):  # a cooldown, then no capacity: not worth queueing within a 5 s budget
        with pytest.raises(Exception):
            client.chat.completions.create(model="gpt-rest", messages=[{"role": "user", "content": "rest"}])
    client.chat.completions.create(model="no-price-model-xyz", messages=[{"role": "user", "content": "unpriced"}])
    garbled = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "no-price-model-xyz", "usage": "lots",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
    fake.script("FREE1", Step(body=garbled))
    client.chat.completions.create(model="no-price-model-xyz", messages=[{"role": "user", "content": "garbled usage"}])


def test_every_dashboard_query_parses_and_the_checker_catches_mistakes():
    targets = dashboard_targets()
    assert len(targets) >= 20
    for title, expr, _ in targets:
        promql.parse(expr)  # raises on anything the checker cannot read
    exported = {"coo_llm_requests_total": {"provider", "status"}, "coo_llm_inflight_requests": set(), "x_bucket": {"le"}}
    types = {"coo_llm_requests_total": "counter", "coo_llm_inflight_requests": "gauge", "x_bucket": "histogram"}
    wrong = {
        "sum by (nope) (rate(coo_llm_requests_total[5m]))": "no label 'nope'",
        "sum(rate(coo_llm_request_total[5m]))": "coo_llm_request_total is not exported",
        'sum(rate(coo_llm_requests_total{code="500"}[5m]))': "no label 'code'",
        "rate(coo_llm_inflight_requests[5m])": "not a counter",
        "sum(rate(coo_llm_requests_total))": "needs a range selector",
        "histogram_quantile(0.9, sum(rate(x_bucket[5m])))": "needs the 'le' label",
        "sum by (status) (rate(coo_llm_requests_total[5m])) / sum(rate(coo_llm_requests_total[5m]))": "no series would match",
    }
    for expr, expected in wrong.items():
        problems, _ = promql.check(promql.parse(expr), exported, types)
        assert any(expected in problem for problem in problems), (expr, problems)
    problems, kept = promql.check(promql.parse("histogram_quantile(0.5, sum by (le, provider) (rate(x_bucket[5m])))"), {"x_bucket": {"le", "provider"}}, types)
    assert problems == [] and kept == {"provider"}


def test_every_dashboard_query_reads_series_the_deployment_exports(deployment, fake):
    gateway, worker_metrics = deployment
    send_everything(gateway, fake)
    deadline = time.time() + 20  # the worker runs its crons every second or two
    while True:
        pages = [httpx.get(gateway.url + "/metrics").text, httpx.get(worker_metrics).text]
        exported, types = promql.exported_series([family for page in pages for family in families(page)])
        if "coo_llm_job_duration_seconds_bucket" in exported or time.time() > deadline:
            break
        time.sleep(0.5)
    # The scrape targets the dashboard's Prometheus reads: the gateway replicas and the worker.
    scraped = yaml.safe_load((ROOT / "configs/prometheus.yml").read_text())["scrape_configs"]
    assert {job["job_name"] for job in scraped} == {"coo-llm-web", "coo-llm-worker"}
    failures = []
    for title, expr, legend in dashboard_targets():
        problems, kept = promql.check(promql.parse(expr), exported, types, target_labels=TARGET_LABELS)
        missing = promql.legend_labels(legend) - (kept or set())
        if missing:
            problems.append(f"legend {legend!r} uses {sorted(missing)}, which the result does not keep")
        failures += [f"{title}: {expr}: {problem}" for problem in problems]
    assert not failures, "\n".join(failures)
    # And the traffic really made the labelled series the dashboard reads (not just their names).
    queried = set().union(*(promql.metric_names(promql.parse(expr)) for _, expr, _ in dashboard_targets()))
    assert queried <= set(exported)
    assert {"coo_llm_failovers_total", "coo_llm_no_capacity_total", "coo_llm_unpriced_requests_total", "coo_llm_unreadable_usage_total",
            "coo_llm_cache_saved_usd_total", "coo_llm_time_to_first_token_seconds_bucket", "coo_llm_jobs_total"} <= queried


def request_process(response: httpx.Response) -> str:
    """Which web process answered: request ids are ``req_`` + a per-process random prefix + a counter."""
    return response.headers["x-request-id"][:20]


def test_two_processes_report_one_coherent_set_of_series(deployment, fake):
    gateway, _ = deployment
    before = families(httpx.get(gateway.url + "/metrics").text)
    headers = {"authorization": "Bearer client-key"}
    body = {"model": "gpt-count", "messages": [{"role": "user", "content": "count"}]}
    served_by: dict[str, int] = {}
    sent = 0
    while sent < 60 and (len(served_by) < 2 or sent < 12):  # fresh connections until both processes answered
        response = httpx.post(gateway.url + "/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": f"count {sent}"}]}, headers=headers)
        assert response.status_code == 200
        served_by[request_process(response)] = served_by.get(request_process(response), 0) + 1
        sent += 1
    assert len(served_by) == 2, served_by
    time.sleep(0.3)
    after = families(httpx.get(gateway.url + "/metrics").text)

    # One series per name and label set: nothing reported once per process.
    seen = set()
    for family in after:
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in seen, f"duplicated series {key}"
            seen.add(key)
            assert "pid" not in sample.labels, f"{sample.name} is reported per process ({family.type} in 'all' mode)"
    names = [family.name for family in after]
    assert len(names) == len(set(names))

    def value(fams, name, **labels):
        return sum(s.value for f in fams for s in f.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    # Counters and histograms are summed over both processes.
    assert value(after, "coo_llm_requests_total", provider="cnt", status="200") - value(before, "coo_llm_requests_total", provider="cnt", status="200") == sent
    assert value(after, "coo_llm_request_duration_seconds_count", provider="cnt") - value(before, "coo_llm_request_duration_seconds_count", provider="cnt") == sent
    assert value(after, "coo_llm_request_duration_seconds_bucket", provider="cnt", le="+Inf") == value(after, "coo_llm_request_duration_seconds_count", provider="cnt")
    buckets = sorted((float(s.labels["le"]), s.value) for f in after for s in f.samples if s.name == "coo_llm_request_duration_seconds_bucket" and s.labels.get("provider") == "cnt")
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)  # cumulative
    # Gauges: in flight is the sum over live processes (nothing is in flight now); degraded is one series.
    assert value(after, "coo_llm_inflight_requests") == 0
    assert [s.labels for f in after for s in f.samples if s.name == "coo_llm_store_degraded"] == [{}]


def test_a_cooldown_lifted_by_another_process_reads_as_lifted(deployment, fake):
    """``coo_llm_key_cooldown_until_timestamp_seconds`` is a reading of shared state: when one
    process starts a cooldown and another lifts it, /metrics must say lifted, whichever process
    answers the scrape (with ``max`` the first process's old end time would win)."""
    gateway, _ = deployment
    headers = {"authorization": "Bearer client-key"}
    for attempt in range(20):
        fake.script("REST1", Step(status=429, headers={"retry-after": "30"}))
        httpx.post(gateway.url + "/admin/v1/keys/rest%231/reset", headers=ADMIN)  # a clean start for this round
        cooled = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "gpt-rest", "messages": HELLO}, headers=headers)
        assert cooled.status_code == 429
        reset = httpx.post(gateway.url + "/admin/v1/keys/rest%231/reset", headers=ADMIN)
        assert reset.status_code == 200 and reset.json()["id"] == "rest#1"
        if request_process(reset) != request_process(cooled):
            break
    else:
        pytest.fail("the reset never landed on the other process")
    keys = httpx.get(gateway.url + "/admin/v1/keys", headers=ADMIN).json()["data"]
    assert [k["cooldown_left_s"] for k in keys if k["id"] == "rest#1"] == [0]
    for _ in range(6):  # either process may answer the scrape
        text = httpx.get(gateway.url + "/metrics").text
        samples = [s for f in families(text) for s in f.samples if s.name == "coo_llm_key_cooldown_until_timestamp_seconds" and s.labels["key"] == "rest#1"]
        assert [s.value for s in samples] == [0.0]
