"""Client keys managed at run time (issue 13): two ``coo-llm serve`` processes and a worker on one
real Redis, the official ``openai`` SDK as the client.

A client is created through one gateway's admin API and used through both; its own request and
token windows, its USD budget (under 3x oversubscription split across the processes), a budget
raised with PATCH, a revocation and an expiry are all seen by both processes. What the fake
upstream received is counted per key, so "served" means an upstream really answered.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import openai
import pytest

from app.tokens import estimate_prompt_tokens
from conftest import openai_client
from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import redis_command

ADMIN = {"authorization": "Bearer admin-secret-key"}
# USD per 1K tokens: a prompt token costs 0.001, a completion token 0.002.
PRICING = {"input_token_cost": 1.0, "output_token_cost": 2.0}
PROMPT = [{"role": "user", "content": "x" * 40}]
PROMPT_TOKENS = estimate_prompt_tokens({"messages": PROMPT})  # what the gateway reserves for it


def worst_case(max_tokens: int) -> float:
    return PROMPT_TOKENS * 0.001 + max_tokens * 0.002


@pytest.fixture(scope="module")
def pair(start_gateway, upstream, redis):
    """(gateway A, gateway B) on one Redis, and a worker folding usage every second."""
    cfg = config(
        [
            provider("p", upstream.url, ["GOV1"], models=["gov-model"], pricing=PRICING),
            provider("other", upstream.url, ["GOV2"], models=["other-model"], pricing=PRICING),
            provider("free", upstream.url, ["GOV3"], models=["unpriced-model"]),
        ],
        client_keys=[
            {"key": "client-key"},
            {"key": "cfg-limited-key", "description": "config team", "limits": {"req_per_min": 2}, "budgets": {"usd_per_month": 100}},
        ],
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        workers={"rollup_every": "1s"},
    )
    first, second = start_gateway(cfg), start_gateway(cfg)
    worker = WorkerProcess(first.config_path, first.workdir)
    worker.start(ready=lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1")
    yield first, second
    worker.stop()


def create(gateway, **fields) -> dict:
    response = httpx.post(gateway.url + "/admin/v1/clients", headers=ADMIN, json={"name": "team", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def shown(gateway, client_id: str) -> dict:
    response = httpx.get(f"{gateway.url}/admin/v1/clients/{client_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def ask(gateway, key: str, *, model: str = "gov-model", max_tokens: int = 100, **kwargs):
    """One chat completion through the SDK; the raw response (headers and the parsed answer)."""
    return openai_client(gateway, key).chat.completions.with_raw_response.create(model=model, messages=PROMPT, max_tokens=max_tokens, **kwargs)


def outcome(gateway, key: str, **kwargs) -> str:
    """"ok", or the error code the SDK raised."""
    try:
        ask(gateway, key, **kwargs)
    except openai.APIStatusError as error:
        return f"{error.status_code} {error.code}"
    return "ok"


def test_a_created_client_works_on_both_processes_with_its_headers(pair, fake):
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=30))
    made = create(a, name="analytics", limits={"req_per_min": 50, "tokens_per_min": 10_000}, budgets={"usd_per_day": 5, "usd_per_month": 50}, metadata={"team": "data"})
    key = made["key"]
    assert key.startswith("sk-coo-") and len(key) >= len("sk-coo-") + 32
    assert made["key_hint"] == key[-4:] and made["id"].startswith("cl_")
    assert "digest" not in made and made["revoked"] is False and made["metadata"] == {"team": "data"}

    raw = ask(b, key)  # the other process: it has not read this client yet, the store lookup finds it
    assert raw.parse().choices[0].message.content.startswith("echo:")
    cost = PROMPT_TOKENS * 0.001 + 30 * 0.002
    headers = raw.headers
    assert float(headers["x-coo-llm-cost-usd"]) == pytest.approx(cost)
    assert headers["x-ratelimit-limit-requests"] == "50" and headers["x-ratelimit-remaining-requests"] == "49"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    assert headers["x-ratelimit-remaining-tokens"] == str(10_000 - PROMPT_TOKENS - 30)  # settled to the real tokens
    assert headers["x-ratelimit-reset-requests"] == "1.2s"  # 1 of 50 per 60 s refills in 1.2 s
    assert float(headers["x-coo-llm-budget-remaining-usd"]) == pytest.approx(5 - cost)

    second = ask(a, key).headers
    assert second["x-ratelimit-remaining-requests"] == "48"  # one window across both processes
    assert float(second["x-coo-llm-budget-remaining-usd"]) == pytest.approx(5 - 2 * cost)

    view = shown(b, made["id"])
    assert view["spend"]["requests_today"] == 2 and view["spend"]["tokens_today"] == 2 * (PROMPT_TOKENS + 30)
    assert view["spend"]["usd_today"] == pytest.approx(2 * cost) and view["spend"]["usd_this_month"] == pytest.approx(2 * cost)
    assert "key" not in view and "digest" not in view and view["name"] == "analytics"
    listed = httpx.get(a.url + "/admin/v1/clients", headers=ADMIN).json()["data"]
    assert made["id"] in [c["id"] for c in listed]
    assert fake.count("GOV1") == 2


def test_only_a_digest_of_the_key_is_stored(pair, redis):
    import redis as redis_py

    made = create(pair[0], name="secretive")
    secret = made["key"].encode()
    client = redis_py.Redis(port=redis.port)
    dump = b""
    for name in client.scan_iter(count=1000):
        kind = client.type(name)
        if kind == b"string":
            dump += client.get(name) or b""
        elif kind == b"hash":
            dump += b"".join(k + v for k, v in client.hgetall(name).items())
        elif kind == b"zset":
            dump += b"".join(client.zrange(name, 0, -1))
        dump += name
    assert made["id"].encode() in dump  # the client is there...
    assert secret not in dump and secret[7:] not in dump  # ...its key is not


def test_the_request_window_is_exact_across_both_processes(pair, fake):
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=5, delay=0.05))
    key = create(a, limits={"req_per_min": 7})["key"]
    gateways = [a, b] * 10
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda gw: outcome(gw, key, max_tokens=10), gateways))
    assert results.count("ok") == 7
    assert results.count("429 rate_limit_exceeded") == 13
    assert fake.count("GOV1") == 7
    with pytest.raises(openai.RateLimitError) as caught:
        ask(b, key)
    assert caught.value.body["code"] == "rate_limit_exceeded" and caught.value.body["type"] == "rate_limit_error"
    assert 50 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_the_token_window_settles_to_real_tokens(pair, fake):
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=3))
    reserve = PROMPT_TOKENS + 100
    used = PROMPT_TOKENS + 3
    limit = 5 * used + 2 * reserve + 10  # after five settled answers: room for two reservations at once, not three
    key = create(a, limits={"tokens_per_min": limit})["key"]
    remaining = []
    for gateway in (a, b, a, b, a):  # five in a row: each settles to its real 20 tokens before the next
        remaining.append(int(ask(gateway, key).headers["x-ratelimit-remaining-tokens"]))
    assert remaining == [limit - used * n for n in range(1, 6)]
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=3, delay=0.5))
    with ThreadPoolExecutor(3) as pool:  # three at once: the third finds no room for its estimate
        results = list(pool.map(lambda gw: outcome(gw, key), [a, b, a]))
    assert sorted(results) == ["429 rate_limit_exceeded", "ok", "ok"]


def test_the_budget_holds_under_3x_oversubscription_and_a_patch_raises_it(pair, fake):
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=100, delay=0.3))  # every request costs its worst case
    each = worst_case(100)
    budget = 10.5 * each  # room for 10
    made = create(a, budgets={"usd_per_day": budget})
    key = made["key"]
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda gw: outcome(gw, key), [a, b] * 16))  # 32 requests: 3x what fits
    assert results.count("ok") == 10 and results.count("429 budget_exceeded") == 22
    assert fake.count("GOV1") == 10
    spend = shown(b, made["id"])["spend"]
    assert spend["usd_today"] == pytest.approx(10 * each) and spend["usd_today"] <= budget
    assert spend["requests_today"] == 10

    with pytest.raises(openai.RateLimitError) as caught:
        ask(a, key)
    body = caught.value.body
    assert body["code"] == "budget_exceeded" and body["type"] == "insufficient_quota"
    now = datetime.now(timezone.utc)
    to_midnight = (datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1) - now).total_seconds()
    assert abs(int(caught.value.response.headers["retry-after"]) - to_midnight) <= 2  # UTC day

    raised = httpx.patch(f"{a.url}/admin/v1/clients/{made['id']}", headers=ADMIN, json={"budgets": {"usd_per_day": budget + 3 * each}})
    assert raised.status_code == 200 and raised.json()["budgets"]["usd_per_day"] == pytest.approx(budget + 3 * each)
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=100))
    assert outcome(a, key) == "ok"  # the process that changed it: at once
    deadline = time.monotonic() + 1.0
    while outcome(b, key) != "ok":  # the other one: within a second
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert outcome(a, key) == "ok"
    assert outcome(b, key) == "429 budget_exceeded"  # 13 fit in the raised budget, 13.5 x each
    assert shown(a, made["id"])["spend"]["usd_today"] == pytest.approx(13 * each)


def test_overspend_stays_within_one_reservation_when_answers_cost_less(pair, fake):
    """Answers cheaper than their worst case free budget as they settle; concurrent ones never
    pass the budget by more than the largest reservation."""
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=40, delay=0.2))
    each = worst_case(100)
    budget = 6.5 * each  # room for six worst cases at once (a half to spare: float sums)
    made = create(a, budgets={"usd_per_month": budget})
    with ThreadPoolExecutor(18) as pool:
        results = list(pool.map(lambda gw: outcome(gw, made["key"]), [a, b] * 9))
    assert results.count("ok") >= 6 and results.count("ok") + results.count("429 budget_exceeded") == 18
    spent = shown(a, made["id"])["spend"]["usd_this_month"]
    assert spent == pytest.approx(results.count("ok") * worst_case(40))  # each charged its real cost
    assert spent <= budget + each


def test_revocation_reaches_both_processes_within_a_second(pair, fake):
    a, b = pair
    made = create(a, name="leaving")
    key = made["key"]
    assert outcome(a, key) == "ok" and outcome(b, key) == "ok"  # both remember the key now
    started = time.monotonic()
    revoked = httpx.delete(f"{b.url}/admin/v1/clients/{made['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True and revoked.json()["revoked_at"]
    assert outcome(b, key) == "401 api_key_revoked"  # the process that revoked it: at once
    while outcome(a, key) != "401 api_key_revoked":
        assert time.monotonic() - started < 1.0
        time.sleep(0.01)
    assert shown(a, made["id"])["revoked"] is True
    assert httpx.delete(f"{a.url}/admin/v1/clients/{made['id']}", headers=ADMIN).status_code == 200  # again: still revoked


def test_an_expired_key_is_refused_on_both_processes(pair, fake):
    a, b = pair
    expires = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    made = create(a, expires_at=expires.isoformat())
    assert made["expires_at"] == expires.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert outcome(a, made["key"]) == "ok" and outcome(b, made["key"]) == "ok"
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    assert outcome(a, made["key"]) == "401 api_key_expired" and outcome(b, made["key"]) == "401 api_key_expired"


def test_allowed_models_and_providers(pair, fake):
    a, b = pair
    models = create(a, allowed_models=["gov-model"])["key"]
    providers = create(a, allowed_providers=["other"])["key"]
    assert outcome(b, models) == "ok"
    assert outcome(b, models, model="other-model") == "403 model_not_allowed"
    assert outcome(b, models, model="p:gov-model") == "403 model_not_allowed"  # names are matched as sent
    assert outcome(a, providers, model="other-model") == "ok"
    assert outcome(a, providers) == "403 provider_not_allowed"


def test_a_stream_reports_its_cost_in_the_usage_chunk(pair, fake):
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=12))
    made = create(a, limits={"req_per_min": 10}, budgets={"usd_per_day": 1})
    raw = ask(b, made["key"], stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-ratelimit-remaining-requests"] == "9"
    assert "x-coo-llm-cost-usd" not in raw.headers  # not known before the answer: see the usage chunk
    chunks = list(raw.parse())
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage.completion_tokens == 12
    cost = PROMPT_TOKENS * 0.001 + 12 * 0.002
    assert usage.cost_usd == pytest.approx(cost)
    assert shown(a, made["id"])["spend"]["usd_today"] == pytest.approx(cost)


def test_a_stream_the_client_leaves_is_settled(pair, fake):
    a, b = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=12, chunks=20, chunk_delay=0.1))
    made = create(a, limits={"req_per_min": 10}, budgets={"usd_per_day": 1})
    with httpx.stream(
        "POST", b.url + "/v1/chat/completions", headers={"authorization": f"Bearer {made['key']}"},
        json={"model": "gov-model", "messages": PROMPT, "max_tokens": 100, "stream": True},
    ) as response:
        assert response.status_code == 200
        next(response.iter_bytes())  # the first frame, then hang up
    deadline = time.monotonic() + 5
    while shown(a, made["id"])["spend"]["requests_today"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    spend = shown(a, made["id"])["spend"]
    assert spend["tokens_today"] == PROMPT_TOKENS + 100  # charged the estimate, as the lease is
    assert spend["usd_today"] == pytest.approx(worst_case(100))


def test_a_model_without_a_price_is_served_and_charged_nothing_with_allow(pair, fake):
    a, _ = pair
    made = create(a, budgets={"usd_per_day": 0.5})
    raw = ask(a, made["key"], model="unpriced-model")
    assert raw.parse().choices and "x-coo-llm-cost-usd" not in raw.headers
    assert float(raw.headers["x-coo-llm-budget-remaining-usd"]) == pytest.approx(0.5)
    assert shown(a, made["id"])["spend"]["usd_today"] == 0


def test_config_keys_carry_limits_and_budgets_too(pair, fake):
    a, b = pair
    results = [outcome(gw, "cfg-limited-key", max_tokens=5) for gw in (a, b, a)]
    assert results == ["ok", "ok", "429 rate_limit_exceeded"]
    assert "x-coo-llm-budget-remaining-usd" not in ask(a, "client-key").headers  # a key without a budget
    assert outcome(b, "client-key") == "ok"


def test_the_usage_report_names_runtime_clients(pair, fake):
    a, b = pair
    made = create(a, name="reporting team")
    assert outcome(b, made["key"]) == "ok"
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(a.url + "/admin/v1/usage", params={"group_by": "client"}, headers=ADMIN).json()["data"]
        found = [row for row in rows if row["client"] == made["id"]]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found and found[0]["name"] == "reporting team" and found[0]["requests"] == 1


BAD = [
    ({"name": "x", "colour": "red"}, "colour", "unknown_parameter"),
    ({"name": "x", "budgets": {"usd_per_day": -1}}, "budgets.usd_per_day", "invalid_value"),
    ({"name": "x", "budgets": {"usd_per_day": "5"}}, "budgets.usd_per_day", "invalid_type"),
    ({"name": "x", "budgets": {"usd_per_week": 5}}, "budgets.usd_per_week", "unknown_parameter"),
    ({"name": "x", "limits": {"req_per_min": 0}}, "limits.req_per_min", "invalid_value"),
    ({"name": "x", "limits": {"req_per_min": 2.5}}, "limits.req_per_min", "invalid_type"),
    ({"name": "x", "limits": {"req_per_min": True}}, "limits.req_per_min", "invalid_type"),
    ({"name": "x", "limits": 5}, "limits", "invalid_type"),
    ({"name": "x", "expires_at": "next tuesday"}, "expires_at", "invalid_value"),
    ({"name": "x", "expires_at": "2026-13-01T00:00:00Z"}, "expires_at", "invalid_value"),
    ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "invalid_value"),
    ({"name": "x", "expires_at": 1234}, "expires_at", "invalid_type"),
    ({"name": 5}, "name", "invalid_type"),
    ({"name": ""}, "name", "invalid_value"),
    ({}, "name", "missing_required_parameter"),
    ({"name": "x", "allowed_providers": ["nope"]}, "allowed_providers[0]", "invalid_value"),
    ({"name": "x", "allowed_providers": "p"}, "allowed_providers", "invalid_type"),
    ({"name": "x", "allowed_models": ["ok", 3]}, "allowed_models[1]", "invalid_type"),
    ({"name": "x", "allowed_models": []}, "allowed_models", "invalid_value"),
    ({"name": "x", "metadata": [1]}, "metadata", "invalid_type"),
    ({"name": "x", "key": "sk-coo-mine"}, "key", "unknown_parameter"),
]


@pytest.mark.parametrize("body, param, code", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_admin_input_is_a_400_naming_the_field(pair, body, param, code):
    a, _ = pair
    response = httpx.post(a.url + "/admin/v1/clients", headers=ADMIN, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert param.split("[")[0].split(".")[0] in error["message"]


def test_bad_patches_and_unknown_clients(pair):
    a, _ = pair
    made = create(a, name="patchable", limits={"req_per_min": 5, "tokens_per_min": 1000}, budgets={"usd_per_day": 1})
    url = f"{a.url}/admin/v1/clients/{made['id']}"
    for body, param in [({"name": None}, "name"), ({"id": "cl_x"}, "id"), ({"budgets": {"usd_per_month": -0.01}}, "budgets.usd_per_month"), ({"revoked": False}, "revoked")]:
        response = httpx.patch(url, headers=ADMIN, json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    for raw in (b"{", b"[1]", b""):
        response = httpx.patch(url, headers=ADMIN, content=raw)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    merged = httpx.patch(url, headers=ADMIN, json={"name": "renamed", "limits": {"req_per_min": None}, "budgets": {"usd_per_month": 9}}).json()
    assert merged["name"] == "renamed"
    assert merged["limits"] == {"req_per_min": None, "tokens_per_min": 1000}  # merged: null removes, others stay
    assert merged["budgets"] == {"usd_per_day": 1, "usd_per_month": 9}
    for method in ("get", "patch", "delete"):
        response = httpx.request(method, f"{a.url}/admin/v1/clients/cl_missing", headers=ADMIN, json={} if method == "patch" else None)
        assert response.status_code == 404 and response.json()["error"]["code"] == "client_not_found"
    assert httpx.get(a.url + "/admin/v1/clients", headers={"authorization": "Bearer nope"}).status_code == 401


# ---------------------------------------------------------------------------------- one gateway, memory store


@pytest.fixture(scope="module")
def solo(start_gateway, upstream):
    """An open gateway (no config keys) whose policy denies budgeted clients unpriced models."""
    cfg = config(
        [
            provider("p", upstream.url, ["SOLO1"], models=["gov-model"], pricing=PRICING),
            provider("free", upstream.url, ["SOLO2"], models=["unpriced-model"]),
        ],
        client_keys=[],
        policy={"unpriced": "deny"},
        model_aliases={"mixed": ["free:unpriced-model", "p:gov-model"]},
    )
    return start_gateway(cfg)


def test_the_first_runtime_client_closes_an_open_gateway(solo, fake):
    assert outcome(solo, "anything") == "ok"  # open: no keys anywhere
    made = create(solo, name="first")
    assert outcome(solo, "anything") == "401 invalid_api_key"
    assert httpx.post(solo.url + "/v1/chat/completions", json={"model": "gov-model", "messages": PROMPT}).json()["error"]["code"] == "missing_api_key"
    assert outcome(solo, made["key"]) == "ok"


def test_deny_keeps_budgeted_clients_off_unpriced_targets(solo, fake):
    budgeted = create(solo, budgets={"usd_per_day": 1})["key"]
    unbudgeted = create(solo, limits={"req_per_min": 100})["key"]
    assert outcome(solo, budgeted, model="unpriced-model") == "403 model_unpriced"
    assert ask(solo, budgeted, model="mixed").headers["x-coo-llm-provider"] == "p"  # the priced target of the group
    assert ask(solo, unbudgeted, model="mixed").headers["x-coo-llm-provider"] == "free"  # no budget: the group's order
    assert outcome(solo, unbudgeted, model="unpriced-model") == "ok"
    assert fake.count("SOLO2") == 2 and fake.count("SOLO1") == 1


def test_models_lists_only_the_allowed_models(pair):
    a, _ = pair
    key = create(a, allowed_models=["other-model", "no-such-model"])["key"]
    listed = openai_client(a, key).models.list()
    assert [m.id for m in listed.data] == ["other-model"]
    assert len(openai_client(a, "client-key").models.list().data) > 1


def test_refusals_are_counted_by_reason(pair, fake):
    a, _ = pair
    fake.set_default("GOV1", Step(prompt_tokens=PROMPT_TOKENS, completion_tokens=5))
    key = create(a, limits={"req_per_min": 1}, budgets={"usd_per_day": worst_case(10) * 3})["key"]
    assert [outcome(a, key, max_tokens=10), outcome(a, key, max_tokens=10)] == ["ok", "429 rate_limit_exceeded"]
    assert outcome(a, key, max_tokens=400) == "429 budget_exceeded"  # the budget is checked first
    metrics = httpx.get(a.url + "/metrics").text
    counts = {reason: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() for reason in ("requests", "budget")
              if line.startswith(f'coo_llm_client_refusals_total{{reason="{reason}"}}')}
    assert counts["requests"] >= 1 and counts["budget"] >= 1
