"""Queue-backed retries without Redis: the same job runs on the web process's local scheduler,
and the usage and queue admin endpoints work on the memory backend."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider

ADMIN = {"authorization": "Bearer admin-secret-key"}


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    cfg = config(
        # One provider (and key) per test: a cooldown one test causes must not leak into the next.
        [provider(f"p{n}", upstream.url, [f"k{n}"], models=[f"gpt-{n}"]) for n in (1, 2, 3, 4)],
        policy={"retry": {"max_attempts": 2, "timeout": "6s", "queue": True}},
        workers={"rollup_every": "1s"},
    )
    return start_gateway(cfg)


def chat(gw, content="hi", model="gpt-1"):
    return openai_client(gw).chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": content}])


def test_a_request_waits_in_the_queue_until_its_key_rests_no_more(gw, fake):
    fake.script("k1", Step(status=429, headers={"retry-after": "1"}))
    started = time.monotonic()
    raw = chat(gw, "deferred please")
    elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == "echo: deferred please"
    assert raw.headers["x-coo-llm-deferred"].startswith("chat:")
    assert fake.count("k1") == 2  # the 429, then the deferred success: nothing in between
    assert elapsed >= 1.0  # it waited for the cooldown instead of failing


def test_a_wait_longer_than_the_budget_is_not_queued(gw, fake):
    fake.script("k2", Step(status=429, headers={"retry-after": "30"}))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gw, model="gpt-2")
    assert time.monotonic() - started < 3.0
    assert int(caught.value.response.headers["retry-after"]) >= 29
    assert "x-coo-llm-deferred" not in caught.value.response.headers
    assert fake.count("k2") == 1


def test_a_deferred_request_that_still_finds_no_room_fails_cleanly_before_its_deadline(gw, fake):
    fake.script("k3", Step(status=429, headers={"retry-after": "1"}), Step(status=429, headers={"retry-after": "30"}))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        chat(gw, model="gpt-3")
    assert time.monotonic() - started < 6.0
    assert fake.count("k3") == 2


def test_queue_endpoint_reports_outcomes(gw):
    snapshot = httpx.get(gw.url + "/admin/v1/queue", headers=ADMIN).json()
    assert snapshot["backend"] == "local"
    assert snapshot["outcomes"]["deferred_chat"]["success"] >= 1
    assert snapshot["outcomes"]["deferred_chat"]["failed"] >= 1
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'coo_llm_jobs_total{function="deferred_chat",outcome="success"}' in metrics
    assert 'coo_llm_queue_depth{state="deferred"}' in metrics


def test_usage_endpoint_validates_its_parameters(gw):
    bad = [({"group_by": "colour"}, "group_by"), ({"from": "yesterday"}, "from"), ({"from": "2026-01-02", "to": "2026-01-01"}, "from"),
           ({"from": "nan"}, "from"), ({"to": "inf"}, "to")]
    for params, param in bad:
        response = httpx.get(gw.url + "/admin/v1/usage", params=params, headers=ADMIN)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    ok = httpx.get(gw.url + "/admin/v1/usage", params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-03", "group_by": "model"}, headers=ADMIN)
    assert ok.status_code == 200
    assert ok.json()["from"] == 1767225600 and ok.json()["to"] == 1767398400 and ok.json()["group_by"] == "model"


def test_usage_counts_every_finished_chat_request(gw, fake):
    for _ in range(3):
        chat(gw, "count me", model="gpt-4")
    with pytest.raises(openai.NotFoundError):  # unknown model: counted under model "" (never the invented name)
        openai_client(gw).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = {row["model"]: row for row in httpx.get(gw.url + "/admin/v1/usage", params={"group_by": "model"}, headers=ADMIN).json()["data"]}
        if rows.get("gpt-4", {}).get("requests") == 3 and "" in rows:
            break
        time.sleep(0.3)
    assert (rows["gpt-4"]["requests"], rows["gpt-4"]["ok"], rows["gpt-4"]["errors"]) == (3, 3, 0)
    assert (rows[""]["requests"], rows[""]["errors"]) == (1, 1)
    assert rows["gpt-4"]["prompt_tokens"] > 0 and rows["gpt-4"]["latency_ms"] > 0
